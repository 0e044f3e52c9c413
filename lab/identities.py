"""Names the lab gives its parts (shared by tests, benchmarks and the demo)."""
ARRAY_IQN = "iqn.2026-11.lab.stonewall:array1"
NODE_A_IQN = "iqn.2026-11.lab.stonewall:node-a"
NODE_B_IQN = "iqn.2026-11.lab.stonewall:node-b"
