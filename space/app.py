"""Hugging Face Space entry point of the fashion-ddpm demo (Spaces run `python app.py`).

Staged by `fashion-ddpm demo --stage-space DIR`, this file sits beside a copy of the `pipeline` package and the model
in `model/`. In the repository it runs the shipped model: `python space/app.py`. All the app is `pipeline.demo`.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Staged Space: the package is beside this file. Repository checkout: space/ is beside pipeline/.
sys.path.insert(0, str(HERE if (HERE / "pipeline").is_dir() else HERE.parent))

from pipeline.demo import space_app  # noqa: E402

demo = space_app(HERE)

if __name__ == "__main__":
    demo.launch()  # Spaces set GRADIO_SERVER_NAME=0.0.0.0 and the port
