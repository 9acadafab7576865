"""textinv: the Gradio app (Train, Generate, Hub). Placeholder until the app lands."""

import gradio as gr

with gr.Blocks(title="textinv") as demo:
    gr.Markdown("# textinv\nTextual Inversion studio: the app is under construction; use `python -m textinv_core`.")

if __name__ == "__main__":
    demo.launch()
