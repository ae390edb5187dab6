"""`python app.py` starts the web demo (the usual entry point of a Gradio Space); `zoo serve` does the same
with options. Set ZOO_DATA to show real test images as examples."""

from zoo.serve.demo import build_demo, launch

if __name__ == "__main__":
    launch(build_demo())
