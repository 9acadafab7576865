"""The Hub tab: share a concept trained here, find and load the community's.

`build` lays the tab out and returns its components as a `HubTab`; `wire` connects them to the
handlers below. Every Hub call goes through huggingface_hub with the visitor's own token (see
`visitor_token`), never the server's on a Space.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from huggingface_hub import HfApi, hf_hub_download

from .. import publish
from ..concepts import concept_name
from ..hub import HubError, hub_unreachable, search_concepts
from ..models import BaseModel
from . import forms
from .context import concepts_library, hub_api, model, own, viewing
from .fields import MAX_KEYWORD_CHARS
from .generate_tab import GenerateTab, demo_files_note
from .notices import failed, ok, unexpected
from .session import Session
from .settings import MOCK_OAUTH_TOKEN, OAUTH, ON_SPACE
from .shell import Shell
from .views import concept_views
from .widgets import textbox


@dataclass
class HubTab:
    offline: gr.Markdown
    account: gr.Markdown
    token_box: gr.Textbox
    push_run: gr.Dropdown
    repo_name: gr.Textbox
    namespace: gr.Textbox
    license: gr.Dropdown
    private: gr.Checkbox
    push_btn: gr.Button
    push_status: gr.Markdown
    query: gr.Textbox
    search_btn: gr.Button
    results: gr.Dropdown
    search_md: gr.Markdown
    result_previews: gr.Gallery
    load_selected_btn: gr.Button
    selected_status: gr.Markdown
    source: gr.Textbox
    keyword: gr.Textbox
    load_btn: gr.Button
    status: gr.Markdown


def build(base: BaseModel) -> HubTab:
    with gr.Tab("Hub", id="hub"):
        hub_offline = gr.Markdown(visible=False, elem_id="hub-offline", elem_classes="notice")
        with gr.Row(equal_height=False):
            with gr.Column():
                gr.Markdown("### Your account")
                account_md = gr.Markdown(account_status())
                if OAUTH:
                    gr.LoginButton()
                token_box = gr.Textbox(
                    label=forms.TOKEN.label, type="password", placeholder="hf_…", elem_id="token",
                    max_length=forms.TOKEN.max_chars,
                    info="Used for this tab's requests only; never stored or shown", visible=not OAUTH,
                )
                gr.Markdown("### Share a concept you trained")
                push_run = gr.Dropdown([], label="Concept", info="Concepts trained in this tab", allow_custom_value=True)
                with gr.Row():
                    repo_name = textbox(forms.REPO_NAME, placeholder="red-rocket")
                    namespace = textbox(forms.NAMESPACE, placeholder="your user name", elem_id="namespace",
                                        info="Empty: your account; or an organization of yours")
                with gr.Row():
                    license_ = gr.Dropdown(list(publish.LICENSES), value=publish.LICENSES[0], label="License")
                    private = gr.Checkbox(label="Private repo", value=False)
                push_btn = gr.Button("Push to the Hub", variant="primary")
                push_status = gr.Markdown(elem_classes="status-box", elem_id="push-status")
            with gr.Column():
                gr.Markdown(f"### Find community concepts\nSearch the `{concepts_library()}` library."
                            + demo_files_note(base))
                with gr.Row():
                    query = textbox(forms.SEARCH, placeholder="cat, watercolor, robot…", scale=3,
                                    elem_id="search")
                    search_btn = gr.Button("Search", scale=1)
                results = gr.Dropdown([], label="Results", allow_custom_value=True)
                search_md = gr.Markdown(elem_id="search-status")
                result_previews = gr.Gallery(label="Preview images", columns=4, height=180,
                                             object_fit="cover")
                load_selected_btn = gr.Button("Load selected concept", variant="primary")
                selected_status = gr.Markdown(elem_classes="status-box", elem_id="selected-status")
                gr.Markdown("Or load any concept by keyword (`cat-toy`), repo (`user/name`) or Hub link:")
                with gr.Row():
                    hub_source = textbox(forms.HUB_SOURCE, placeholder="cat-toy", scale=3, elem_id="hub-source")
                    hub_keyword = gr.Textbox(label=forms.OPTIONAL_KEYWORD, placeholder="keep its own", scale=2,
                                             max_length=MAX_KEYWORD_CHARS)
                    hub_load_btn = gr.Button("Load", scale=1)
                hub_status = gr.Markdown(elem_classes="status-box", elem_id="hub-status")
    return HubTab(
        offline=hub_offline, account=account_md, token_box=token_box, push_run=push_run, repo_name=repo_name,
        namespace=namespace, license=license_, private=private, push_btn=push_btn, push_status=push_status,
        query=query, search_btn=search_btn, results=results, search_md=search_md, result_previews=result_previews,
        load_selected_btn=load_selected_btn, selected_status=selected_status, source=hub_source,
        keyword=hub_keyword, load_btn=hub_load_btn, status=hub_status,
    )


# -- handlers -----------------------------------------------------------------------------------


def visitor_token(oauth_token: gr.OAuthToken | None, typed: str | None):
    """The token to act with: the visitor's OAuth token on a Space, a pasted one, or HF_TOKEN.

    On a Space the Space's own HF_TOKEN is never used for a visitor (it would let anyone push to
    the owner's account), except behind gradio's local mock login, whose token is not real.
    Returns False (send no token) when there is none, so nothing stored on the server is used.
    """
    if oauth_token is not None and oauth_token.token and oauth_token.token != MOCK_OAUTH_TOKEN:
        return oauth_token.token
    typed = forms.TOKEN.parse(typed)
    if typed:
        return typed
    mocked = oauth_token is not None and oauth_token.token == MOCK_OAUTH_TOKEN
    if (not ON_SPACE or mocked) and os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"]
    return False


def require_hub(api: HfApi, action: str) -> None:
    """Fail at once, saying so, while the Hub can't be reached (instead of waiting for retries)."""
    if reason := hub_unreachable(api.endpoint):
        raise HubError(f"{action} needs the Hugging Face Hub, which this server can't reach right now ({reason})")


def hub_notice():
    """The Hub tab's first line while the Hub can't be reached from this server."""
    reason = hub_unreachable(hub_api(False).endpoint)
    if reason is None:
        return gr.update(visible=False)
    text = (f"⚠ **The Hugging Face Hub can't be reached from this server right now** ({html.escape(reason, quote=False)}). "
            "Searching and pushing won't work until it is back; concepts this server downloaded before can "
            "still be loaded by name.")
    return gr.update(value=text, visible=True)


LOGIN_HOW = "log in with Hugging Face" if OAUTH else "paste a token with write access above, or set HF_TOKEN"


def own_namespace(api: HfApi) -> str:
    """The token owner's user name, or the reason there is none (not logged in, bad token, offline)."""
    try:
        return api.whoami()["name"]
    except Exception:
        publish.check_can_push(api, "")  # raises the explanation
        raise ValueError("could not find your user name on the Hub: fill in the namespace") from None


def push(session: Session, run_dir, name, namespace, private, license, token_text,
         oauth_token: gr.OAuthToken | None = None):
    session = viewing(session)
    try:
        runs = {Path(run.output_dir).name: run for run in session.finished_runs}
        if not runs:
            raise ValueError("train a concept first (Train tab): pushing shares a concept trained in this tab")
        run = runs.get(Path(str(run_dir or "")).name) or session.finished_runs[-1]
        name, namespace = forms.REPO_NAME.parse(name), forms.NAMESPACE.parse(namespace)
        token = visitor_token(oauth_token, token_text)
        api = hub_api(token)
        if not token and (reason := hub_unreachable(api.endpoint)):  # both are missing: say both at once
            raise HubError(f"pushing needs you logged in ({LOGIN_HOW}) and the Hugging Face Hub, which this server "
                           f"can't reach right now ({reason})")
        require_hub(api, "pushing")
        namespace = namespace or own_namespace(api)
        repo_id = publish.repo_id_for(namespace, name or concept_name(run.keyword))
        url = publish.push_concept(run.output_dir, repo_id, api, private=bool(private), license=license)
    except ValueError as err:
        return failed(err, "Not pushed")
    except Exception as err:
        return unexpected(err, "the push")
    return ok(f"pushed to [{repo_id}]({url}){' (private)' if private else ''}. Others can load it here by typing `{repo_id}`.")


def search(query, token_text, session: Session | None, oauth_token: gr.OAuthToken | None = None):
    """Search the concepts library; the results are kept in the session for "Load selected"."""
    session = own(session)
    try:
        query = forms.SEARCH.parse(query)
        api = hub_api(visitor_token(oauth_token, token_text))
        results = search_concepts(query, api=api, author=concepts_library(), limit=24)
    except ValueError as err:
        return gr.update(choices=[], value=None), [], failed(err, "Search failed"), session
    session.search_results = {r.repo_id: r for r in results}
    if not results:
        shown = html.escape(query, quote=False)
        return gr.update(choices=[], value=None), [], f"No concepts found for “{shown}” in {concepts_library()}.", session
    choices = [(f"{r.keyword} — {r.repo_id}" + (f" ({r.concept_type})" if r.concept_type else ""), r.repo_id) for r in results]
    first = results[0]
    return (gr.update(choices=choices, value=first.repo_id), fetch_previews(first, api),
            describe_result(first, len(results)), session)


def describe_result(result, count: int | None = None) -> str:
    head = f"Found {count} concept{'s' if count != 1 else ''}. " if count else ""
    kind = result.concept_type or "unknown type"
    previews = "" if result.preview_urls else " This repo has no preview images."
    return f"{head}`{result.keyword}` · {kind} · `{result.repo_id}`.{previews}"


def show_result(repo_id, token_text, session: Session | None, oauth_token: gr.OAuthToken | None = None):
    result = viewing(session).search_results.get(repo_id)
    if result is None:
        return [], gr.update()
    try:
        api = hub_api(visitor_token(oauth_token, token_text))
    except ValueError as err:
        return [], failed(err, "Can't show it")
    return fetch_previews(result, api), describe_result(result)


def load_from_hub(source, keyword, token_text, session: Session, oauth_token: gr.OAuthToken | None = None):
    """Load a concept from the Hub into the session: the concept table, picker, status text, session."""
    session = own(session)
    try:
        source, keyword = forms.HUB_SOURCE.parse(source), forms.optional_keyword(keyword)
        api = hub_api(visitor_token(oauth_token, token_text))
        concept, notes = session.load_from_hub(model(), source, keyword, api, concepts_library())
    except ValueError as err:
        return (*concept_views(session), failed(err, "Concept not loaded"), session)
    except Exception as err:
        return (*concept_views(session), unexpected(err, "loading the concept"), session)
    extra = "; ".join(notes)
    message = f"loaded `{concept.token}` ({concept.concept_type}) from {source}; it is listed in the Generate tab"
    return (*concept_views(session, concept.token), ok(message + (f" ({extra})" if extra else "")), session)


def load_selected(repo_id, keyword, token_text, session: Session, oauth_token: gr.OAuthToken | None = None):
    """"Load selected concept": the search result picked above, with its own message and status."""
    if not repo_id:
        return (*concept_views(viewing(session)), failed(ValueError("search first, then pick a concept in the results"), "Nothing picked"),
                session)
    return load_from_hub(repo_id, keyword, token_text, session, oauth_token)


def account_status(token_text: str | None = None, profile: gr.OAuthProfile | None = None) -> str:
    if profile is not None:
        return f"Logged in as **{profile.username}**: you can push concepts to your account and your organizations."
    if OAUTH:
        return "Log in with Hugging Face to push concepts to your account (searching and loading need no login)."
    if os.environ.get("HF_TOKEN"):
        return "Using the token in `HF_TOKEN` on this machine; paste another one below to use it instead."
    return "Paste a Hugging Face token with **write** access to push (searching and loading need none)."


def fetch_previews(result, api, limit: int = 4) -> list[str]:
    """Local copies of a search result's preview images (through the Hub cache, with the visitor's
    token), so the page never links to the Hub directly. Images that fail to download are skipped."""
    paths = []
    for url in result.preview_urls[:limit]:
        filename = url.split("/resolve/main/", 1)[-1]
        try:
            paths.append(hf_hub_download(result.repo_id, filename, endpoint=api.endpoint, token=api.token))
        except Exception:  # a missing preview must not stop the search from showing
            continue
    return paths


# -- wiring ---------------------------------------------------------------------------------------


def wire(tab: HubTab, shell: Shell, generate: GenerateTab) -> None:
    session, token = shell.session, tab.token_box
    push_form = dict(run_dir=tab.push_run, name=tab.repo_name, namespace=tab.namespace, private=tab.private,
                     license=tab.license, token_text=token)
    tab.push_btn.click(push, [session], [tab.push_status], inputs_kwargs=push_form, api_name="push")
    search_outputs = [tab.results, tab.result_previews, tab.search_md, session]
    tab.search_btn.click(search, [tab.query, token, session], search_outputs, api_name="search")
    tab.query.submit(search, [tab.query, token, session], search_outputs, api_visibility="private")
    tab.results.input(show_result, [tab.results, token, session], [tab.result_previews, tab.search_md],
                      api_visibility="private")
    concepts = [generate.concept_table, generate.concept_pick]
    tab.load_selected_btn.click(load_selected, [tab.results, tab.keyword, token, session],
                                [*concepts, tab.selected_status, session], api_name="load_selected")
    tab.load_btn.click(load_from_hub, [tab.source, tab.keyword, token, session], [*concepts, tab.status, session],
                       api_name="load_concept")
    shell.demo.load(hub_notice, None, [tab.offline], api_name="hub_notice")
    if OAUTH:
        shell.demo.load(account_status, None, [tab.account], api_visibility="private")
