"""Reports from results folders: plots of latency against FLOPs and MAC, the ShuffleNet V2 tables with the paper's
values alongside, the op-category breakdown, and the compare-devices report. Needs pandas and matplotlib."""
