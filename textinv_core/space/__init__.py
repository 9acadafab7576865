"""The web app: the Space's half of textinv. gradio is imported here and nowhere in the library.

The library (`textinv_core`: models, train, concepts, prompts, readers, writers, hub, publish,
generate, quality, toyworld) knows nothing of visitors or pages; this package uses it, never the
other way round. Each tab is a module that builds its widgets into a typed record and wires its
handlers (`train_tab`, `generate_tab`, `hub_tab`); `page` holds what is around the tabs; `app.py`
at the top of the repository only assembles them and launches.

What a visitor owns lives in `session` (with `uploads`, `driving` of a run in chunks, `downloads`
and `keywords`); `visitors` says who they are and how long it is kept, `runs` lets a run outlive
its page, `forms` and `fields` check every value a visitor sends, `estimate` says how long a run
takes, `messages` keeps server details out of what a visitor reads.
"""
