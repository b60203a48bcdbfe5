"""Hugging Face Space entry point of the fashion-ddpm demo (Spaces run `python app.py`).

`fashion-ddpm demo --stage-space DIR` copies this file (the template in pipeline/demo/space_template/) into DIR, beside
a copy of the `pipeline` package and the model in `model/`. All the app is `pipeline.demo.space_app`; on this machine,
`fashion-ddpm demo` serves the same app.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the staged copy of the package beside this file, before any installed one

from pipeline.demo import serve, space_app  # noqa: E402

demo = space_app(HERE)

if __name__ == "__main__":
    serve(demo)  # launch, one default request before the first visitor's; Spaces set GRADIO_SERVER_NAME and the port
