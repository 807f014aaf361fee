"""The command-line applications beside `pcbench` itself: `pcbench-train` (train a pruner or a probe)
and `pcbench-serving` (a cell's cost under a real server). Apps sit above runners and analysis."""
