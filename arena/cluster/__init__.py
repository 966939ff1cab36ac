"""Beyond one machine: the cells of a run as tasks on a Ray cluster (ray_executor.py), placed by the
resources each node offers (resources.py), every result written into this machine's results store.

SLURM needs no code here: Hydra's submitit launcher runs a whole arena run as one job on one node
(arena/conf/hydra/launcher/slurm.yaml), on the cluster's shared file system.
"""
