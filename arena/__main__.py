"""`python -m arena [+matrix=NAME] [key=value ...]`: run a benchmark matrix (Hydra composes, pydantic validates).

Without `+matrix=`, the matrix for this machine is chosen (apple on Apple Silicon, nvidia where an
NVIDIA GPU is visible, cpu otherwise) exactly as if it had been typed.
"""

from __future__ import annotations

import sys

from arena.errors import ArenaError
from arena.run.system import detect_matrix


def main() -> None:
    import hydra
    from omegaconf import OmegaConf

    if not any(arg.lstrip("+").startswith("matrix=") for arg in sys.argv[1:]) and not {"-h", "--help", "--info", "-i"} & set(sys.argv[1:]):
        # Beside the other overrides: argparse wants them in one run (`a=1 --multirun` and `--cfg job a=1` both work).
        overrides = [i for i, arg in enumerate(sys.argv) if i and "=" in arg and not arg.startswith("-")]
        sys.argv.insert(overrides[0] if overrides else len(sys.argv), f"+matrix={detect_matrix()}")

    @hydra.main(version_base="1.3", config_path="conf", config_name="config")
    def app(cfg) -> None:
        from arena.results.report import print_summary
        from arena.run.config import validate_run_config
        from arena.run.orchestrate import execute, plan

        try:
            config = validate_run_config(OmegaConf.to_container(cfg, resolve=True))
            if config.executor.kind == "ray":
                from arena.cluster.ray_executor import execute
            results = execute(plan(config))
        except ArenaError as err:
            print(f"arena: error: {err}", file=sys.stderr)
            sys.exit(1)
        print_summary(results)

    app()


if __name__ == "__main__":
    main()
