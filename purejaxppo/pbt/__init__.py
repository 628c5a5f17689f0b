"""Population-based training (Jaderberg et al., 2017) as a run: `purejaxppo pbt`.

The library form, pure functions over the run axis, is `purejaxppo.core.pbt` (`exploit_explore`, `select`,
`copy_learner`, `explore`, `make_pbt_train`); re-exported here. This package adds what makes it a run and a
report:

* `spec.py`: `PBTSpec` (base config, population, ready_every, ranges, exploit, perturb, resample_prob, seeds)
  from flags or a YAML file, every part checked (ConfigError naming the field and the fix) before anything
  is compiled.
* `runner.py`: `pbt_run(spec, out_dir)`: the population is a run folder's run axis (purejaxppo.runs:
  chunked, checkpointed, resumed bit-identically, on a mesh, over processes); `resume=True` continues it.
* `report.py`: `pbt_report` / `write_pbt_report` (pbt.md, pbt.json, plots) and `best_member`, read back from
  the folder's metrics.jsonl (the `pbt_parent`, `pbt_score` and `hp_<field>` columns).
"""

from purejaxppo.core.pbt import (
    PBTConfig,
    PBTState,
    PBTTrain,
    copy_learner,
    exploit_explore,
    explore,
    initial_hparams,
    make_pbt_train,
    select,
)
from purejaxppo.pbt.report import best_member, pbt_report, write_pbt_report
from purejaxppo.pbt.runner import PBTResult, pbt_run
from purejaxppo.pbt.spec import PBTSpec, build_pbt_spec, read_pbt_file

__all__ = [
    "PBTConfig",
    "PBTResult",
    "PBTSpec",
    "PBTState",
    "PBTTrain",
    "best_member",
    "build_pbt_spec",
    "copy_learner",
    "exploit_explore",
    "explore",
    "initial_hparams",
    "make_pbt_train",
    "pbt_report",
    "pbt_run",
    "read_pbt_file",
    "select",
    "write_pbt_report",
]
