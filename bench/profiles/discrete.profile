# TPM latency model: discrete -- a slow discrete TPM: Infineon OPTIGA SLB 9670 (TPM 2.0,
# FW 7.85, SPI at 43 MHz on a Raspberry Pi).
#
# Source (measured): wolfSSL, wolfTPM README, "TPM2 Benchmarks", run of examples/bench/bench
# on the Infineon OPTIGA SLB9670 at 43MHz (https://github.com/wolfSSL/wolfTPM, README.md):
#   RNG 14.0 KB/s; SHA256 136.8 KB/s
#   RSA 2048 key gen 2196.2 ms; RSA 2048 Private 163.2 ms; RSA 2048 Priv OAEP 167.4 ms
#   ECC 256 key gen 231.4 ms; ECDSA 256 sign 68.9 ms; ECDHE 256 agree 232.1 ms
#   How bench.c takes them (examples/bench/bench.c): key gen = wolfTPM2_CreateAndLoadKey
#   (TPM2_Create + TPM2_Load under a storage key; the README's note for that run says the
#   keys come from a template and the hierarchy seed); RSA Private = TPM2_RSA_Decrypt with
#   scheme NULL; ECDSA sign = TPM2_Sign; ECDHE agree = wolfTPM2_ECDHGen = TPM2_ECDH_KeyGen
#   (an ephemeral key: one fixed-base and one variable-base scalar multiplication).
# The same table for other discrete TPMs, for comparison: ST33TP SPI 33 MHz: ECDSA sign
# 42.3 ms, RSA private 247.8 ms, RSA key gen 7455 ms; Nuvoton NPCT750 43 MHz: ECDSA sign
# 56.4 ms, RSA private 70.3 ms, RSA key gen 3408.7 ms; Nuvoton NPCT650: ECDSA sign 190.1 ms,
# RSA private 540.9 ms. The SLB 9670 lies in the middle of these. Chrome's field study
# (issue 16) found 200 ms median, 600 ms 95th percentile per ECDSA P-256 signature on users'
# machines: the slower half of discrete TPMs.
#
# Not measured there, estimated (say so when quoting):
# * commands without asymmetric work: 2.3 ms, from the measured RNG rate (14 KB/s with
#   wolfTPM's 32-byte GetRandom requests: about 440 commands/s, i.e. a trivial command's
#   round trip over SPI including the chip's firmware);
# * commands that wrap or unwrap an object or context (Load, ContextSave, ContextLoad,
#   Unseal): 5 ms (two symmetric passes and an HMAC over a few hundred bytes; cf. 7.5 ms per
#   1 KB SHA-256 update in the measured hash rate);
# * ECDH_ZGen: one variable-base multiplication: ECDHE agree - ECDSA sign (whose cost is
#   one fixed-base multiplication) = 232.1 - 68.9 = 163.2 ms;
# * salted StartAuthSession: the salt's decryption (ECC: one ZGen with the salt key; RSA:
#   one private-key operation);
# * CreatePrimary: as the measured key generation (Create + Load).
# * Quote, Certify: one signature, as Sign.
# A cross-check: an unseal with a long PCR policy (about 20 commands incl. CreatePrimary)
# takes 2.72 s on an STMicro discrete TPM (github.com/archledger/irlume issue 248), i.e.
# more than this profile's estimates give for the non-asymmetric commands: they are on the
# optimistic side.
#
# Format: see none.profile.

# Measured.
Sign/ecc 68.9
Sign 68.9                 # NULL scheme: as Sign/ecc
RSA_Decrypt 163.2         # RSA 2048 Private (raw); OAEP: 167.4
Create/ecc 231.4          # ECC 256 key gen (Create + Load)
Create/rsa 2196.2         # RSA 2048 key gen (Create + Load; prime search time varies widely)
Create 231.4
ECDH_KeyGen 232.1         # ECDHE 256 agree

# Estimated.
Sign/rsa 163.2            # the same private-key operation as RSA 2048 Private
CreatePrimary/ecc 231.4   # as the measured key generation
CreatePrimary/rsa 2196.2
ECDH_ZGen 163.2           # ECDHE agree - ECDSA sign
StartAuthSession/ecc 163.2
StartAuthSession/rsa 163.2
StartAuthSession/unsalted 2.3
Quote/rsa 163.2
Quote 68.9
Certify/rsa 163.2
Certify 68.9
Load 5.0
ContextSave 5.0
ContextLoad 5.0
Unseal 5.0
default 2.3
