# TPM latency model: demonstrator -- the per-command times the device-management
# demonstrator this project's field builds on reports through its TSS (issue 16 of this
# project quotes them): Create 4.8 ms, Load 2.8-3.7 ms, StartAuthSession 2.0 ms,
# PolicyPCR 0.6 ms, RSA_Decrypt 3.2 ms, ReadPublic 2.4 ms, PCR_Read 0.8 ms, Certify 2.3 ms,
# Quote 2.8 ms (end to end: a TLS connection 73 ms, a quote 66 ms). Its TPM is not named;
# the figures are those of a fast TPM (a firmware TPM or a recent discrete one).
#
# Format: see none.profile. "measured" = the demonstrator's figure; "estimated" = not in its
# table, derived as the comment says.

# Measured.
Create 4.8
Load 3.25                 # measured range 2.8-3.7 ms (midpoint)
StartAuthSession 2.0
PolicyPCR 0.6
RSA_Decrypt 3.2
ReadPublic 2.4
PCR_Read 0.8
Certify 2.3
Quote 2.8

# Estimated.
Sign/rsa 3.2              # the same RSA private-key operation as RSA_Decrypt
Sign/ecc 2.3              # one ECC signature, as Certify (a signature over an attest structure)
Sign 2.3                  # NULL scheme: as Sign/ecc
ECDH_ZGen 2.3             # one scalar multiplication, as an ECC signature
CreatePrimary/ecc 4.8     # ECC key derivation, as Create
CreatePrimary/rsa 45.6    # Create x 9.5, the RSA-2048/ECC-P256 key generation ratio of the SLB 9670 (discrete.profile)
Create/rsa 45.6           # as CreatePrimary/rsa
Unseal 0.8                # no asymmetric work: as PCR_Read
ContextSave 0.8           # symmetric wrap of a context: as PCR_Read
ContextLoad 0.8           # as ContextSave
FlushContext 0.6          # the cheapest measured command (PolicyPCR)
default 0.8               # other commands without asymmetric work (GetCapability, TestParms, Hash, ...): as PCR_Read
