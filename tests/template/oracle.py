"""Python's jinja2 configured as transformers configures it for chat templates: the immutable
sandbox, trim_blocks, lstrip_blocks, loop controls, its own tojson, raise_exception and
strftime_now (pinned to a date here, as `corral template render --now` pins Corral's)."""
import datetime
import json

from jinja2 import TemplateError
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2 import nodes


class AssistantTracker(Extension):
    # transformers' {% generation %} block: renders its body unchanged.
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env(now):
    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return now.strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def prepare_messages(messages):
    """The API's JSON-string tool-call arguments parsed into objects, as Corral does."""
    out = json.loads(json.dumps(messages))
    for m in out:
        if isinstance(m, dict) and isinstance(m.get("tool_calls"), list):
            for tc in m["tool_calls"]:
                fn = tc.get("function") if isinstance(tc, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    try:
                        parsed = json.loads(fn["arguments"])
                    except ValueError:
                        continue
                    if isinstance(parsed, dict):
                        fn["arguments"] = parsed
    return out


_compiled = {}


def _template(source, now):
    """Compiling a template costs far more than rendering it: one compile per (source, date)."""
    key = (source, now)
    if key not in _compiled:
        env = make_env(datetime.datetime.strptime(now, "%Y-%m-%d"))
        try:
            _compiled[key] = (True, env.from_string(source))
        except Exception as e:  # noqa: BLE001 - a template that does not compile raises on every render
            _compiled[key] = (False, f"{type(e).__name__}: {e}")
    return _compiled[key]


def render(source, conv, bos, eos, add_generation_prompt=True, now="2024-09-15"):
    """(ok, text or exception message)"""
    ok, tmpl = _template(source, now)
    if not ok:
        return False, tmpl
    try:
        extra = {"documents": None, "bos_token": bos, "eos_token": eos}
        extra.update({k: v for k, v in conv.items() if k not in ("messages", "tools")})
        # As transformers' apply_chat_template: tools and documents are passed (None when absent).
        return True, tmpl.render(messages=prepare_messages(conv["messages"]), tools=conv.get("tools"),
                                 add_generation_prompt=add_generation_prompt, **extra)
    except Exception as e:  # noqa: BLE001 - any failure is "raising", as for Corral
        return False, f"{type(e).__name__}: {e}"
