"""The shared harness and everything that trains: stage 1 (recognizers), stage 2 (C-SRIP), the Table 1
competitors and the Table 2-4 experiments."""
