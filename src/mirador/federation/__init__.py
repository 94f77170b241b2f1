"""Federation: peers improve one shared LoRA adapter together on Flower, without sharing data.

Each peer trains on its own rated examples (mirador.training) and sends only its adapter
update: clipped to a fixed L2 norm, masked by SecAgg+ so the coordinator sees only the sum,
and noised once summed (central differential privacy, epsilon reported per round and in
total). Flower (`flwr`, the `federation` extra) is imported only by the Flower apps and
the launcher, never at Mirador's start-up.

    accounting.py  epsilon of the Gaussian mechanism over rounds (Renyi DP)
    tensors.py     a LoRA as the flat list of arrays Flower averages, and back
    plan.py        a run's choices, as Flower's run config
    peer.py        one peer's local work: its examples, a local update, its held-out loss
    apps.py        the Flower ServerApp (FedAvg + DP + SecAgg+) and ClientApp
    launch.py      SuperLink, SuperNode and `flwr run` as processes
    dryrun.py      what a round would send, without sending it
"""

WHAT_LEAVES = """\
What leaves this machine when you federate (and nothing else):
  - each round, the change to the shared adapter that your peer trained: its LoRA matrices,
    clipped to an L2 norm of {clip}, masked with SecAgg+ so that the coordinator can only
    see the sum over all peers, to which it adds Gaussian noise (multiplier {noise});
  - each round, your peer's loss on its own held-out examples (one number);
  - Flower's connection metadata (a node id, heartbeats) to the SuperLink at {superlink}.
Never sent: your questions, answers, ratings, memories, or how many examples you have."""
