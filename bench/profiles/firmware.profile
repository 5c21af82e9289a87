# TPM latency model: firmware -- a firmware TPM (Intel PTT in the CSME, AMD fTPM in the PSP):
# no bus, a faster core than a discrete TPM's, the same command set.
#
# No published per-command table for a firmware TPM was found (searches: wolfTPM's
# benchmarks cover discrete chips only; TPM-FAIL (Moghimi et al., USENIX Security 2020)
# times Intel fTPM signatures in cycles without a per-command table; SiSoftware's
# "Crypto-processor (TPM) Benchmarking: Discrete vs. internal AMD, Intel" (2021) and
# stiankri's "TPM performance" (2024) report signatures per second per machine, but their
# tables were not retrievable here). This profile is therefore ESTIMATED from two published
# points:
# * the discrete profile (Infineon SLB 9670, wolfTPM README), scaled by 1/13.6: the same
#   unseal flow takes 0.20 s on a firmware TPM and 2.72 s on an STMicro discrete TPM
#   (github.com/archledger/irlume issue 248, "A keyring unseal still costs 2.7 deterministic
#   seconds": "the same operation on a firmware TPM ... is 0.20s");
# * a floor of 0.6 ms per command, the cheapest command in the demonstrator's table
#   (PolicyPCR through its TSS): a firmware TPM's command still crosses a mailbox to the
#   CSME/PSP, so a scaled time below that is not credible.
# Replace with measured figures when a per-command table for PTT or fTPM is at hand.
#
# Format: see none.profile.

Sign/ecc 5.1              # 68.9 / 13.6
Sign 5.1
Sign/rsa 12.0             # 163.2 / 13.6
RSA_Decrypt 12.0
CreatePrimary/ecc 17.0    # 231.4 / 13.6
CreatePrimary/rsa 161.5   # 2196.2 / 13.6
Create/ecc 17.0
Create/rsa 161.5
Create 17.0
ECDH_ZGen 12.0            # 163.2 / 13.6
ECDH_KeyGen 17.1          # 232.1 / 13.6
StartAuthSession/ecc 12.0
StartAuthSession/rsa 12.0
StartAuthSession/unsalted 0.6
Quote/rsa 12.0
Quote 5.1
Certify/rsa 12.0
Certify 5.1
Load 0.6                  # 5.0 / 13.6 = 0.37, floored
ContextSave 0.6
ContextLoad 0.6
Unseal 0.6
default 0.6               # 2.3 / 13.6 = 0.17, floored
