"""pcbench's Hydra sweeper: every cell of a sweep is composed and built before the first one runs.

`hydra_plugins` is a namespace package (no __init__.py there), as Hydra requires of plugins, so
this folder and the installed plugins (hydra_submitit_launcher) share it.
"""
