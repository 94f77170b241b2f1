"""Energy: the power state, the energy an answer costs, and the profiles that follow them.

`power` reads whether the machine runs on battery (psutil) or a source the tests
script; `meter` measures joules (Linux RAPL where readable, else the process's CPU
time times a watts-per-core figure, and says which); `profiles` holds the built-in
`battery`, `balanced` and `performance` profiles and picks the one that applies.
This package sits low (beside settings): it knows nothing of models or answers.
"""
