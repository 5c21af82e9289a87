# TPM latency model: none -- swtpm as it is.
#
# Format (all profiles): one entry a line, "<Command>[/<kind>] <milliseconds>", where
# <Command> is a TPM 2.0 Part 3 command name without "TPM2_" and <kind> is rsa, ecc or
# unsalted (the key type the wire tap reads from the command's parameters: the public area's
# type for Create/CreatePrimary/CreateLoaded/Load, the scheme for Sign/Quote/Certify, RSA for
# RSA_Decrypt, ECC for ECDH_ZGen/ECDH_KeyGen, the salt size for StartAuthSession).
# "default <milliseconds>" is the time of every command not listed. Lookup order: command
# with kind, command alone, default. "#" starts a comment.
#
# The tap holds one lock over all connections from the moment a command is forwarded until
# its service time has passed (swtpm's own time counts towards it), as a TPM executes one
# command at a time. All zero: no model, no lock.
default 0
