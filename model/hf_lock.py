"""One lock around every transformers model construction in the process.

transformers builds a model inside context managers that patch process-wide state and put it
back on exit: `torch.nn.init`'s functions, `PreTrainedModel.tie_weights` and `init_weights`, and
torch's default dtype. Two threads building at once can exit in the wrong order and leave a patch
in place for the rest of the process. Measured here: after two in-memory Beam workers had each
loaded a model, the next model built in the process had its tied `lm_head` left on the meta
device, or gave NaN losses. Beam's in-memory and multi-threading workers and a Dask worker's
threads load models in threads, so every construction in funfactory holds `HF_LOCK`; it is
re-entrant, so a construction may build another inside it.
"""

from __future__ import annotations

import threading

HF_LOCK = threading.RLock()
