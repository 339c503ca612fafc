"""The training library's former names (new code imports the modules below).

`tfrnn.training` was one 543-line module; its pieces now have one job each:

| name here                          | now in                                   |
|------------------------------------|------------------------------------------|
| `Config`, `OPTIMIZERS`, ... (TF-free) | `tfrnn.config`                        |
| `train`, `Trainer`                 | `tfrnn.loop.train`, `tfrnn.loop.TrainingLoop` |
| `make_optimizer`, `restore_model`, `model_variables`, `make_strategy` | `tfrnn.state` |
| `kernel_name`                      | `tfrnn.report`                           |
| evaluation records (TF-free)       | `tfrnn.clock.Clock`                      |
| the run directory (TF-free)        | `tfrnn.run_dir.RunDir`                   |

The CLI is `python -m tfrnn.train` (`tfrnn/train.py`), over `tfrnn.loop`.
"""

from tfrnn.config import COSINE_FLOOR  # noqa: F401
from tfrnn.config import EVAL_BATCH  # noqa: F401
from tfrnn.config import OPTIMIZERS  # noqa: F401
from tfrnn.config import SCHEDULES  # noqa: F401
from tfrnn.config import STRATEGIES  # noqa: F401
from tfrnn.config import Config  # noqa: F401
from tfrnn.loop import TrainingLoop as Trainer  # noqa: F401
from tfrnn.loop import static_build_notice  # noqa: F401
from tfrnn.loop import train  # noqa: F401
from tfrnn.report import kernel_name  # noqa: F401
from tfrnn.state import is_chief  # noqa: F401
from tfrnn.state import make_optimizer  # noqa: F401
from tfrnn.state import make_strategy  # noqa: F401
from tfrnn.state import model_variables  # noqa: F401
from tfrnn.state import restore_first_readable  # noqa: F401
from tfrnn.state import restore_model  # noqa: F401
