"""Names the lab gives its parts (shared by tests, benchmarks and the demo)."""
ARRAY_IQN = "iqn.2026-11.lab.stonewall:array1"
NODE_A_IQN = "iqn.2026-11.lab.stonewall:node-a"
NODE_B_IQN = "iqn.2026-11.lab.stonewall:node-b"

# The lab's secrets, in one place: tests/secret_guard.py fails every test whose output, log
# records, event log or status file shows one of them.
# every lab BMC's (lab/bmc_process.py); IPMI caps a password at 20 bytes (16 for IPMI 1.5),
# and ipmitool refuses a longer one
BMC_PASSWORD = "lab-bmc-pw-7c1e"
CHAP_USER = "lab-initiator"
CHAP_SECRET = "lab-chap-secret-41d9"  # a target that requires CHAP (Tgtd.require_chap)
LAB_SECRETS = (BMC_PASSWORD, CHAP_SECRET)
