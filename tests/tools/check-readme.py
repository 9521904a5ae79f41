#!/usr/bin/env python3
"""Checks README.md and docs/*.md against the repo and the real tools, so the docs can't drift:

- README.md is at most 12,000 bytes and has its sections in the agreed order; every page in
  docs/ is reachable from the README through relative links;
- every relative link resolves: the file exists and a `#anchor` names a heading of that page
  (GitHub's anchor rules);
- every `sam ...` command in a code block or inline code is parsed as the shell would (shlex)
  and then by SAM CLI's own click command (the samcli in .venv): unknown commands or options
  fail; each `--parameter-overrides` pair must reach SAM whole (the value SAM's
  CfnParameterOverridesType yields equals the shell word after `Name=`), name a parameter of
  the template the command targets, and satisfy its constraints; a `TokenScopes` value must be
  JSON equal to one of the policy files docs/*scopes*.json; and what a documented
  `sam deploy --parameter-overrides` gives the function, mapped through the template's
  Environment, must pass the function's own `--check-config` (the same validation it runs at
  start);
- the `sam deploy --guided` transcript after `<!-- sam deploy --guided -->` lists exactly the
  prompts the installed SAM CLI asks for template.yaml (read from samcli's source, its
  auth check run on the template), in order, with the template's defaults;
- the parameters table after `<!-- parameters -->` lists every template parameter once, in
  template order, with the environment variable the function gets it as, its real bounds and
  its default;
- a code block after `<!-- mirrors: <path> -->` is that file, byte for byte;
- every `make <target>` is a Makefile target, every `cargo test|bench --test|--bench X` a file;
- every `<Placeholder>` in a code block and every backticked parameter-like name is a
  parameter or output of a template; no `--use-container`; no `https://<...Endpoint>`.

`--self-test` (run after the check unless `--no-self-test`) copies the repo's docs and
templates to a scratch directory, confirms the copy passes, then breaks it one way at a time
and confirms each break is reported, so a check that can no longer fail is caught.
"""
import contextlib
import glob
import inspect
import io
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib

import yaml

README_LIMIT = 12_000
SECTIONS = [
    "What it does",
    "Quick start: deploy",
    "Browser",
    "Add it to an existing SAM app",
    "Run it locally",
    "Parameters",
    "Troubleshooting",
    "Documentation",
]
# Pages the README must reach (others' pages included: they are docs too).
GUIDED_MARKER = "<!-- sam deploy --guided -->"
PARAMS_MARKER = "<!-- parameters -->"
MIRRORS = re.compile(r"<!--\s*mirrors:\s*(\S+)\s*-->")


class Tag:
    """A CloudFormation intrinsic as yaml reads it: `!Ref X` -> Tag("Ref", "X")."""

    def __init__(self, name, value):
        self.name, self.value = name, value


class CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return Tag(suffix, value)


CfnLoader.add_multi_constructor("!", _tag)


def load_template(path):
    with open(path) as f:
        return yaml.load(f, Loader=CfnLoader)


def refs(value, conditions):
    """Parameter and resource names an expression depends on, through conditions too."""
    found = set()
    if isinstance(value, Tag):
        if value.name == "Ref":
            found.add(value.value)
        elif value.name == "If":
            cond, *branches = value.value
            found |= refs(conditions.get(cond), conditions)
            for b in branches:
                found |= refs(b, conditions)
        elif value.name == "Sub":
            text = value.value if isinstance(value.value, str) else value.value[0]
            found |= set(re.findall(r"\$\{([A-Za-z0-9]+)\}", text))
        else:
            found |= refs(value.value, conditions)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k == "Condition" and isinstance(v, str):
                found |= refs(conditions.get(v), conditions)
            else:
                found |= refs(v, conditions)
    elif isinstance(value, list):
        for v in value:
            found |= refs(v, conditions)
    return found


# ---------------------------------------------------------------------------- markdown


def github_slug(heading):
    text = re.sub(r"[`*]", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown):
    seen, out = {}, set()
    for heading in headings(markdown):
        slug = github_slug(heading[1])
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def split_code(markdown):
    """(prose with code blocks blanked, [(block text, marker line before it)])."""
    prose, blocks = [], []
    lines = markdown.split("\n")
    i = 0
    previous = ""
    while i < len(lines):
        m = re.match(r"^(\s*)```", lines[i])
        if not m:
            prose.append(lines[i])
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        indent = len(m.group(1))
        body = []
        i += 1
        while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        i += 1
        blocks.append(("\n".join(body) + "\n" if body else "", previous))
        prose.append("")
        previous = ""
    return "\n".join(prose), blocks


def headings(markdown):
    prose, _ = split_code(markdown)
    return [(len(m.group(1)), m.group(2)) for m in re.finditer(r"^(#{1,6}) +(.+?)\s*$", prose, re.M)]


def inline_code(prose):
    return re.findall(r"`([^`\n]+)`", prose)


# ---------------------------------------------------------------------------- SAM CLI


def sam_cli():
    logging.disable(logging.CRITICAL)
    import click
    from samcli.cli.main import cli

    return click, cli


def sam_command(args):
    """Resolve `sam a b ...` to SAM CLI's click command, as `sam` itself does."""
    click, cli = sam_cli()
    cmd, path = cli, ["sam"]
    while isinstance(cmd, click.MultiCommand):
        if not args:
            raise click.UsageError(f"`{' '.join(path)}` needs a subcommand")
        name = args.pop(0)
        ctx = click.Context(cmd, info_name=path[-1], obj=object())
        sub = cmd.get_command(ctx, name)
        if sub is None:
            raise click.UsageError(f"no such command `{' '.join(path + [name])}`")
        cmd = sub
        path.append(name)
    return cmd, path, args


def shell_commands(text):
    """Each simple command of a shell snippet as the shell splits it: [(words, written files)]."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.split("\n"):
        try:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            words = list(lexer)
        except ValueError:
            continue  # not shell (a transcript line, JSON)
        command = []
        for w in words + [";"]:
            if w in (";", "&&", "||", "|", "&"):
                if command:
                    out.append(command)
                command = []
            else:
                command.append(w)
    return out


def written_files(text):
    return set(re.findall(r">\s*([\w./-]+)", text))


def expected_value(word_value):
    """What a `Name=value` shell word should reach the template as: SAM strips one pair of
    double quotes around a value (and their escapes), so `"{\\"a\\":1}"` arrives as {"a":1}."""
    if len(word_value) >= 2 and word_value[0] == word_value[-1] == '"':
        return word_value[1:-1].replace('\\"', '"')
    return word_value


# ---------------------------------------------------------------------------- checks


class Repo:
    def __init__(self, root):
        self.root = root
        self.template = load_template(os.path.join(root, "template.yaml"))
        self.templates = {"template.yaml": self.template}
        for path in sorted(glob.glob(os.path.join(root, "examples", "**", "*.yaml"), recursive=True)):
            try:
                t = load_template(path)
            except yaml.YAMLError:
                continue
            if isinstance(t, dict) and ("Resources" in t or "Parameters" in t):
                self.templates[os.path.relpath(path, root)] = t
        self.pages = {"README.md": self.read("README.md")}
        for path in sorted(glob.glob(os.path.join(root, "docs", "**", "*.md"), recursive=True)):
            self.pages[os.path.relpath(path, root)] = open(path).read()

    def read(self, rel):
        with open(os.path.join(self.root, rel)) as f:
            return f.read()

    def names(self, kind):
        out = set()
        for t in self.templates.values():
            out |= set((t or {}).get(kind) or {})
        return out


def check_size_and_order(repo, problems):
    readme = repo.pages["README.md"]
    size = len(readme.encode())
    if size > README_LIMIT:
        problems.append(f"README.md is {size} bytes, more than {README_LIMIT}")
    found = [text for level, text in headings(readme) if level == 2]
    if found != SECTIONS:
        problems.append(f"README sections are {found}; the order is {SECTIONS}")


def check_links(repo, problems):
    reached, todo = set(), ["README.md"]
    for page, text in repo.pages.items():
        prose, _ = split_code(text)
        prose = re.sub(r"`[^`\n]*`", "", prose)
        for target in re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", prose):
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            rel = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            full = os.path.join(repo.root, rel)
            if not os.path.exists(full):
                problems.append(f"{page}: link {target}: no such file {rel}")
                continue
            if anchor:
                if not rel.endswith(".md"):
                    problems.append(f"{page}: link {target}: an anchor into a file that is not markdown")
                elif anchor not in anchors(open(full).read()):
                    problems.append(f"{page}: link {target}: no heading with the anchor #{anchor} in {rel}")
    # Every page reachable from the README.
    while todo:
        page = todo.pop()
        if page in reached:
            continue
        reached.add(page)
        prose, _ = split_code(repo.pages.get(page, ""))
        for target in re.findall(r"\[[^\]]*\]\(([^)\s#]+)(?:#[^)\s]*)?\)", prose):
            rel = os.path.normpath(os.path.join(os.path.dirname(page), target))
            if rel in repo.pages:
                todo.append(rel)
    for page in repo.pages:
        if page not in reached:
            problems.append(f"{page} is not reachable from README.md through links")


def check_mirrors(repo, problems):
    for page, text in repo.pages.items():
        for block, marker in split_code(text)[1]:
            m = MIRRORS.search(marker)
            if not m:
                continue
            path = os.path.join(repo.root, m.group(1))
            if not os.path.exists(path):
                problems.append(f"{page}: mirrors {m.group(1)}, which does not exist")
            elif open(path).read() != block:
                problems.append(f"{page}: the snippet marked as mirroring {m.group(1)} differs from it")
        marked = len(MIRRORS.findall(text))
        used = sum(1 for _, marker in split_code(text)[1] if MIRRORS.search(marker))
        if marked != used:
            problems.append(f"{page}: a `<!-- mirrors: ... -->` marker is not right before a code block")


def template_for(repo, cwd, params):
    """The template a command reads: its --template-file (SAM resolves it), else cwd/template.yaml."""
    path = params.get("template_file")
    if path:
        rel = os.path.relpath(os.path.join(repo.root, cwd, path), repo.root)
    else:
        rel = os.path.join(cwd, "template.yaml")
    rel = os.path.normpath(rel)
    return rel, repo.templates.get(rel)


def value_problem(name, spec, value):
    if "<" in value or "$" in value:
        return None  # a placeholder or a shell variable
    if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
        return f"{value!r} is not one of {spec['AllowedValues']}"
    if spec.get("Type") == "Number":
        try:
            n = float(value)
        except ValueError:
            return f"{value!r} is not a number"
        if "MinValue" in spec and n < spec["MinValue"] or "MaxValue" in spec and n > spec["MaxValue"]:
            return f"{value} is outside {spec.get('MinValue')}..={spec.get('MaxValue')}"
    if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
        return f"{value!r} does not match {spec['AllowedPattern']}"
    return None


def policy_files(root):
    """The documented scope policies: docs/*scopes*.json (the function's own parser reads them in
    the Rust tests, so a policy the docs pass is one the function accepts)."""
    out = {}
    for path in sorted(glob.glob(os.path.join(root, "docs", "*scopes*.json"))):
        with open(path) as f:
            out[os.path.relpath(path, root)] = json.load(f)
    return out


def check_scope_policy(root, value):
    """A TokenScopes value: JSON, and one of the documented policy files."""
    try:
        policy = json.loads(value)
    except ValueError as e:
        return f"not JSON ({e})"
    files = policy_files(root)
    if policy not in files.values():
        return f"the policy is none of the documented policy files {sorted(files)}: put it in one (docs/<name>-scopes.json)"
    return None


REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
_CHECKER = []


def config_checker():
    """The function's own configuration check: `token-vending-machine --check-config` (the same
    Config the function validates at start; exit 0 = valid, 2 = invalid, naming the variable).
    TVM_CONFIG_CHECK overrides the command; otherwise the debug binary `make test`'s unit tier
    builds, rebuilt with cargo first when any source is newer (or it is missing)."""
    if _CHECKER:
        return _CHECKER[0]
    if os.environ.get("TVM_CONFIG_CHECK"):
        _CHECKER.append(shlex.split(os.environ["TVM_CONFIG_CHECK"]))
        return _CHECKER[0]
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    binary = os.path.join(target, "debug", "token-vending-machine")
    sources = [os.path.join(REPO, f) for f in ("Cargo.toml", "Cargo.lock")]
    sources += glob.glob(os.path.join(REPO, "src", "**", "*.rs"), recursive=True)
    newest = max(os.path.getmtime(f) for f in sources if os.path.exists(f))
    if not os.path.exists(binary) or os.path.getmtime(binary) < newest:
        print("check-readme: building the function for its --check-config", file=sys.stderr)
        subprocess.run(["cargo", "build", "--quiet", "--bin", "token-vending-machine"], cwd=REPO, check=True)
    _CHECKER.append([binary, "--check-config"])
    return _CHECKER[0]


def resolve(value, given, template):
    """An environment value of the template, for the given parameter values (intrinsics the
    function's environment uses: Ref, If, Equals, Not, And, Or, Condition; other refs are "x")."""
    params = template.get("Parameters") or {}
    conditions = template.get("Conditions") or {}

    def ev(v):
        if isinstance(v, Tag):
            if v.name == "Ref":
                if v.value in params:
                    return given.get(v.value, str(params[v.value].get("Default", "")))
                return "x"  # a resource: the secret's ARN
            if v.name == "If":
                cond, yes, no = v.value
                return ev(yes) if ev(conditions[cond]) else ev(no)
            if v.name == "Equals":
                return ev(v.value[0]) == ev(v.value[1])
            if v.name == "Not":
                return not ev(v.value[0])
            if v.name in ("And", "Or"):
                results = [ev(x) for x in v.value]
                return all(results) if v.name == "And" else any(results)
            return "x"
        if isinstance(v, dict) and set(v) == {"Condition"}:
            return ev(conditions[v["Condition"]])
        if isinstance(v, dict) and len(v) == 1:
            key = next(iter(v))
            if key.startswith("Fn::"):
                return ev(Tag(key[4:], v[key]))
        return v if not isinstance(v, (int, float)) else str(v)

    return ev(value)


def function_config_problem(template, overrides):
    """Feed what a deploy gives the function, as the template maps it into its environment, to
    the function's own configuration check."""
    variables = {}
    for res in (template.get("Resources") or {}).values():
        if res.get("Type") == "AWS::Serverless::Function":
            variables.update((((res.get("Properties") or {}).get("Environment") or {}).get("Variables")) or {})
    if not variables:
        return None
    given = {}
    for name, value in overrides.items():
        # A placeholder (<...>, $VAR) stands for a real, non-empty value of the right form.
        if "<" in value or "$" in value:
            value = "placeholder"
        given[name] = value
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOKEN_", "CACHE_", "SECRET_", "MOMENTO_"))}
    for var, expr in variables.items():
        env[var] = str(resolve(expr, given, template))
    run = subprocess.run(config_checker(), env=env, capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        return f"the function's --check-config refuses it: {(run.stderr or run.stdout).strip()}"
    return None


def check_sam_commands(repo, problems, notes):
    click, _ = sam_cli()
    for page, text in repo.pages.items():
        prose, blocks = split_code(text)
        snippets = [(b, False) for b, _ in blocks] + [(c, True) for c in inline_code(prose) if c.startswith("sam ")]
        for snippet, inline in snippets:
            cwd = "."
            written = written_files(snippet)
            for words in shell_commands(snippet):
                while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                    words = words[1:]
                if words[:1] == ["cd"] and len(words) == 2:
                    cwd = os.path.normpath(os.path.join(cwd, words[1]))
                    continue
                if words[:1] != ["sam"] or len(words) < 2:
                    continue
                shown = " ".join(words)
                problems.extend(sam_command_problems(repo, page, shown, words, cwd, written, click, notes, inline))


_PARSED = {}


def parse_sam(repo, cmd, path, args, cwd, written, click):
    """SAM CLI's parse of a command (its click callbacks included), memoised across the self-test's
    copies: {"params": ...} or {"error": message}."""
    key = (tuple(path), tuple(args), cwd, tuple(sorted(written)))
    if key in _PARSED:
        return _PARSED[key]
    here = os.getcwd()
    try:
        os.chdir(os.path.join(repo.root, cwd))
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                ctx = cmd.make_context(path[-1], list(args))
        except click.BadParameter as e:
            missing = re.search(r"Path '([^']+)' does not exist", e.format_message())
            if not (missing and missing.group(1) in written):
                raise
            # A file an earlier line of the same snippet writes (env.json): parse without checks.
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                ctx = cmd.make_context(path[-1], list(args), resilient_parsing=True)
        template = ctx.params.get("template_file")
        result = {"params": {
            "parameter_overrides": ctx.params.get("parameter_overrides"),
            "template_file": os.path.relpath(template, os.path.join(repo.root, cwd)) if template else None,
        }}
    except click.ClickException as e:
        result = {"error": e.format_message()}
    finally:
        os.chdir(here)
    _PARSED[key] = result
    return result


def sam_command_problems(repo, page, shown, words, cwd, written, click, notes, inline):
    out = []
    try:
        cmd, path, args = sam_command(list(words[1:]))
    except click.ClickException as e:
        if inline and "needs a subcommand" in e.format_message():
            return []  # prose naming a command group, such as `sam local`
        return [f"{page}: `{shown}`: {e.format_message()}"]
    parsed = parse_sam(repo, cmd, path, args, cwd, written, click)
    if "error" in parsed:
        return [f"{page}: `{shown}`: SAM CLI refuses it: {parsed['error']}"]
    params = parsed["params"]
    if "--use-container" in words:
        out.append(f"{page}: `{shown}`: --use-container (SAM cannot build Rust in a container)")
    if "--parameter-overrides" not in words:
        return out
    overrides = params.get("parameter_overrides") or {}
    rel, template = template_for(repo, cwd, params)
    tparams = (template or {}).get("Parameters") or {}
    if template is None:
        out.append(f"{page}: `{shown}`: no template {rel} to check its overrides against")
    start = words.index("--parameter-overrides") + 1
    pairs = []
    for w in words[start:]:
        if w.startswith("-"):
            break
        m = re.match(r"^([A-Za-z0-9]+)=(.*)$", w, re.S)
        if m:
            pairs.append((m.group(1), m.group(2)))
    for name, raw in pairs:
        if template is not None and name not in tparams:
            out.append(f"{page}: --parameter-overrides {name}=: no such parameter in {rel}")
            continue
        want = expected_value(raw)
        got = overrides.get(name)
        if got != want:
            out.append(f"{page}: --parameter-overrides {name}= arrives as {got!r}, not {want!r}")
            continue
        if name in tparams:
            why = value_problem(name, tparams[name], got)
            if why:
                out.append(f"{page}: --parameter-overrides {name}={got}: {why}")
        if name == "TokenScopes" and got:
            notes.add("checked-token-scopes")
            why = check_scope_policy(repo.root, got)
            if why:
                out.append(f"{page}: --parameter-overrides TokenScopes: {why}")
    if template is not None and not out and path[-1] == "deploy":
        why = function_config_problem(template, overrides)
        if why:
            out.append(f"{page}: `{shown}`: {why}")
    for name in overrides:
        if name not in [n for n, _ in pairs]:
            out.append(f"{page}: --parameter-overrides: SAM reads a pair {name}= the shell words do not show")
    return out


_PROMPTS = {}


# The AWS CLI's own commands that are not API operations (its customizations): not checked.
AWS_CUSTOM = {("logs", "tail"), ("sso", "login"), ("configure", "export-credentials"), ("configure", None), ("s3", None)}
AWS_GLOBAL = {"--query", "--output", "--region", "--profile", "--endpoint-url", "--no-cli-pager",
              "--debug", "--no-paginate", "--color", "--cli-input-json", "--no-verify-ssl"}


_AWS_MODELS = {}


def aws_model(service):
    if service not in _AWS_MODELS:
        import botocore.session

        session = botocore.session.get_session()
        known = service in session.get_available_services()
        _AWS_MODELS[service] = session.get_service_model(service) if known else None
    return _AWS_MODELS[service]


def aws_command_problems(page, words):
    """`aws <service> <operation> --options`: the operation and its options must exist in the
    service's API model (botocore's, which the AWS CLI builds its arguments from), and every
    required member must be given."""
    from botocore import xform_name

    if len(words) < 3 or words[1].startswith("-"):
        return []
    service, operation = words[1], words[2]
    if (service, operation) in AWS_CUSTOM or (service, None) in AWS_CUSTOM:
        return []
    model = aws_model(service)
    if model is None:
        return [f"{page}: `{' '.join(words)}`: the AWS CLI has no service {service}"]
    ops = {xform_name(o, "-"): o for o in model.operation_names}
    if operation not in ops:
        return [f"{page}: `{' '.join(words)}`: {service} has no operation {operation}"]
    shape = model.operation_model(ops[operation]).input_shape
    members = {xform_name(m, "-"): (m, t) for m, t in (shape.members.items() if shape else [])}
    given, out = set(), []
    for w in words[3:]:
        if not w.startswith("--"):
            continue
        option = w.split("=", 1)[0]
        if option in AWS_GLOBAL:
            continue
        name = option[2:]
        if name.startswith("no-") and name[3:] in members and members[name[3:]][1].type_name == "boolean":
            name = name[3:]
        if name not in members:
            out.append(f"{page}: `{' '.join(words)}`: {service} {operation} has no option {option}")
        else:
            given.add(members[name][0])
    for required in (shape.required_members if shape else []):
        if required not in given:
            out.append(f"{page}: `{' '.join(words)}`: {service} {operation} needs --{xform_name(required, '-')}")
    return out


def check_aws_commands(repo, problems):
    for page, text in repo.pages.items():
        prose, blocks = split_code(text)
        snippets = [b for b, _ in blocks] + [c for c in inline_code(prose) if c.startswith("aws ")]
        for snippet in snippets:
            for words in shell_commands(snippet):
                for i, w in enumerate(words):
                    # `X=$(aws ...)`: the command inside the substitution.
                    if w.startswith("$(aws") or w == "aws" and i == 0:
                        inner = ([w[2:]] if w.startswith("$(") else [w]) + words[i + 1:]
                        inner = [x.rstrip(")") if x.endswith(")") and "(" not in x else x for x in inner]
                        problems.extend(aws_command_problems(page, inner))
                        break
                    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", w):
                        break
                    if "=$(aws" in w:
                        inner = [w.split("=$(", 1)[1]] + words[i + 1:]
                        inner = [x[:-1] if x.endswith(")") else x for x in inner]
                        problems.extend(aws_command_problems(page, inner))
                        break


def expected_prompts(repo):
    """The prompts `sam deploy --guided` asks for template.yaml: [(label, default or None)]."""
    key = tuple(repo.read(f) if os.path.exists(os.path.join(repo.root, f)) else "" for f in ("template.yaml", "samconfig.toml"))
    if key not in _PROMPTS:
        _PROMPTS[key] = _expected_prompts(repo)
    return _PROMPTS[key]


def _expected_prompts(repo):
    sam_cli()
    from samcli.commands.deploy.auth_utils import auth_per_resource
    from samcli.commands.deploy.deploy_context import DeployContext
    from samcli.commands.deploy.guided_context import GuidedContext
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    config = {}
    samconfig = os.path.join(repo.root, "samconfig.toml")
    if os.path.exists(samconfig):
        with open(samconfig, "rb") as f:
            config = tomllib.load(f).get("default", {})
    deploy = {**config.get("global", {}).get("parameters", {}), **config.get("deploy", {}).get("parameters", {})}

    def yes_no(default_src):
        default_src = default_src.strip()
        if default_src.startswith("self."):
            value = bool(deploy.get(default_src[5:], False))
        else:
            value = default_src == "True"
        return "Y/n" if value else "y/N"

    prompt_re = r'(prompt|confirm)\(\s*f"\\t\{self\.start_bold\}(.*?)\{self\.end_bold\}"\s*,\s*default=([^,)\n]+)'
    source = inspect.getsource(GuidedContext.guided_prompts)
    steps = re.findall(prompt_re + r"|self\.(prompt_parameters|prompt_authorization)\(", source)
    auth_src = inspect.getsource(GuidedContext.prompt_authorization)
    auth_label = re.search(r'\{self\.start_bold\}(.*?)\{self\.end_bold\}', auth_src).group(1)
    out = []
    params = repo.template.get("Parameters") or {}
    for kind, label, default, call in steps:
        if call == "prompt_parameters":
            for name, spec in params.items():
                shown = None if spec.get("NoEcho") else str(spec.get("Default", ""))
                out.append((f"Parameter {name}", shown))
        elif call == "prompt_authorization":
            overrides = {k: str(v.get("Default", "x")) or "x" for k, v in params.items()}
            stacks, _ = SamLocalStackProvider.get_stacks(
                os.path.join(repo.root, "template.yaml"), parameter_overrides=overrides
            )
            for resource, authorized in auth_per_resource(stacks):
                if not authorized:
                    out.append((auth_label.replace("{resource}", resource), "y/N"))
        elif label == "Capabilities":
            continue  # asked only when IAM role creation is declined
        elif kind == "confirm":
            out.append((label, yes_no(default)))
        else:
            d = default.strip()
            if d == "default_stack_name":
                shown = deploy.get("stack_name") or "sam-app"
            elif d == "default_config_file":
                shown = "samconfig.toml"
            elif d == "default_config_env":
                shown = "default"
            else:
                shown = "?"  # the region: the machine's AWS configuration decides
            out.append((label, shown))
    out.append((DeployContext.MSG_CONFIRM_CHANGESET, "y/N"))
    return out


def check_guided(repo, problems):
    readme = repo.pages["README.md"]
    blocks = [b for b, marker in split_code(readme)[1] if marker == GUIDED_MARKER]
    if len(blocks) != 1:
        problems.append(f"README: one code block right after {GUIDED_MARKER} is expected, found {len(blocks)}")
        return
    lines = [l for l in blocks[0].split("\n") if l.strip()]
    if not lines or lines[0].strip() != "sam deploy --guided":
        problems.append("README: the guided transcript must start with `sam deploy --guided`")
        return
    shown = []
    for line in lines[1:]:
        line = line.split("  #", 1)[0].rstrip()
        m = re.match(r"^(.+?)(?: \[([^\]]*)\])?:(.*)$", line)
        if not m:
            problems.append(f"README: guided transcript line {line!r} is not `Prompt [default]: answer`")
            continue
        shown.append((m.group(1), m.group(2)))
    want = expected_prompts(repo)
    labels = [l for l, _ in shown]
    if labels != [l for l, _ in want]:
        missing = [l for l, _ in want if l not in labels]
        extra = [l for l in labels if l not in [w for w, _ in want]]
        problems.append(
            "README: the guided prompts differ from what SAM CLI asks for template.yaml"
            + (f"; missing {missing}" if missing else "")
            + (f"; not asked {extra}" if extra else "")
            + ("; order differs" if not missing and not extra else "")
        )
        return
    for (label, default), (_, expected) in zip(shown, want):
        if expected is None or expected == "?":
            continue
        if (default or "") != expected:
            problems.append(f"README: guided prompt {label!r} shows [{default}], SAM CLI shows [{expected}]")


def function_environment(template):
    conditions = template.get("Conditions") or {}
    env = {}
    for res in (template.get("Resources") or {}).values():
        if res.get("Type") not in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            continue
        variables = (((res.get("Properties") or {}).get("Environment") or {}).get("Variables")) or {}
        for var, value in variables.items():
            env[var] = refs(value, conditions)
    return env


def check_parameter_table(repo, problems):
    readme = repo.pages["README.md"]
    at = readme.find(PARAMS_MARKER)
    if at < 0:
        problems.append(f"README: the parameters table marker {PARAMS_MARKER} is missing")
        return
    rows = []
    for line in readme[at + len(PARAMS_MARKER):].lstrip("\n").split("\n"):
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and not set(cells[0]) <= set("-: "):
            rows.append(cells)
    if not rows or [c.lower() for c in rows[0]] != ["parameter", "environment variable", "bounds", "default"]:
        problems.append("README: the parameters table's columns must be parameter | environment variable | bounds | default")
        return
    params = repo.template.get("Parameters") or {}
    env = function_environment(repo.template)
    table = {}
    order = []
    for cells in rows[1:]:
        if len(cells) != 4:
            problems.append(f"README parameters table: row {cells} has not 4 cells")
            continue
        name = cells[0].strip("`")
        order.append(name)
        table[name] = cells
    if order != list(params):
        missing = [p for p in params if p not in table]
        extra = [p for p in order if p not in params]
        problems.append(
            "README parameters table: rows must be the template's parameters in its order"
            + (f"; missing {missing}" if missing else "")
            + (f"; not parameters {extra}" if extra else "")
        )
    for name, (_, var_cell, bounds, default_cell) in table.items():
        spec = params.get(name)
        if spec is None:
            continue
        for var in re.findall(r"`([A-Z][A-Z0-9_]+)`", var_cell):
            if name not in env.get(var, set()):
                problems.append(f"README parameters table: {name} is not how the function's {var} is set")
        for var, deps in env.items():
            if name in deps and f"`{var}`" not in var_cell:
                problems.append(f"README parameters table: {name} sets the function's {var}; the row does not say so")
        # Bounds: every range or minimum written must be the template's, and the template's must be written.
        lo, hi = spec.get("MinValue"), spec.get("MaxValue")
        written_ranges = re.findall(r"(\d+)\.\.=(\d+)", bounds)
        written_min = re.findall(r"≥ ?(\d+)", bounds)
        if lo is not None and hi is not None:
            if written_ranges != [(str(lo), str(hi))] or written_min:
                problems.append(f"README parameters table: {name}'s bounds are {lo}..={hi} in the template, not {bounds!r}")
        elif lo is not None:
            if written_min != [str(lo)] or written_ranges:
                problems.append(f"README parameters table: {name}'s bound is ≥ {lo} in the template, not {bounds!r}")
        elif written_ranges or written_min:
            problems.append(f"README parameters table: {name} has no numeric bounds in the template, the row says {bounds!r}")
        if "AllowedValues" in spec:
            words = set(re.findall(r"[\w.-]+", bounds))
            for v in spec["AllowedValues"]:
                if str(v) not in words:
                    problems.append(f"README parameters table: {name} allows {v!r}, which its bounds cell omits")
        if "AllowedPattern" in spec:
            for shown in re.findall(r"`([^`]+)`", bounds):
                if shown not in spec["AllowedPattern"]:
                    problems.append(f"README parameters table: {name}'s pattern {shown!r} is not in {spec['AllowedPattern']!r}")
        default = spec.get("Default")
        cell = default_cell.replace("`", "")
        if default is None:
            if cell:
                problems.append(f"README parameters table: {name} has no default in the template, the row says {default_cell!r}")
        elif str(default) == "":
            if not cell.startswith("empty"):
                problems.append(f"README parameters table: {name}'s default is empty, the row says {default_cell!r}")
        elif not re.match(re.escape(str(default)) + r"(\b|$|\s|:)", cell):
            problems.append(f"README parameters table: {name}'s default is {default!r}, the row says {default_cell!r}")


def template_keys(value):
    if isinstance(value, dict):
        return set(value) | set().union(*(template_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(template_keys(v) for v in value)) if value else set()
    if isinstance(value, Tag):
        return template_keys(value.value)
    return set()


def check_names(repo, problems):
    makefile = open(os.path.join(repo.root, "Makefile")).read()
    targets = set(re.findall(r"^([a-zA-Z][\w-]*):", makefile, re.M))
    params, outputs, resources = repo.names("Parameters"), repo.names("Outputs"), repo.names("Resources")
    # Property names (SourceArn, FunctionName, ...) are template words too.
    resources |= template_keys(list(repo.templates.values()))
    for page, text in repo.pages.items():
        prose, blocks = split_code(text)
        in_blocks = "\n".join(b for b, _ in blocks)
        code = "\n".join([in_blocks] + inline_code(prose))
        for target in sorted(set(re.findall(r"\bmake ([a-z][\w-]*)", code))):
            if target not in targets:
                problems.append(f"{page}: `make {target}`: no such Makefile target")
        for line in re.findall(r"cargo (?:test|bench)[^\n]*", code):
            for kind, name in re.findall(r"--(test|bench) ([a-z_]+)", line):
                folder = "tests" if kind == "test" else "benches"
                if not os.path.exists(os.path.join(repo.root, folder, f"{name}.rs")):
                    problems.append(f"{page}: `--{kind} {name}`: no {folder}/{name}.rs")
        for name in sorted(set(re.findall(r"<([A-Z][A-Za-z]+)>", in_blocks))):
            if name not in outputs | params:
                problems.append(f"{page}: <{name}> in a code block: no such output or parameter")
        looks_like = re.compile(r"`([A-Z][a-z]+(?:[A-Z][a-z0-9]+)+)`")
        suffix = r"(Seconds|Arn|Limit|Threshold|Endpoint|Email|Origin|Scopes|ApiKey|Namespace|FunctionName|LogGroupName|Enabled|Publish|Apis)$"
        for name in sorted(set(looks_like.findall(text))):
            if re.search(suffix, name) and name not in params | outputs | resources:
                problems.append(f"{page}: `{name}`: not a parameter, output or resource of a template")
        if "--use-container" in in_blocks:
            problems.append(f"{page}: a code block uses `--use-container`: SAM cannot build Rust in a container")
        if re.search(r"https://<[A-Za-z]+Endpoint>", text):
            problems.append(f"{page}: `https://<...Endpoint>`: the outputs already start with https://")


# Paths the docs may name that a build or a test run makes (not in a checkout).
GENERATED = ("test-output/", ".aws-sam/", "target/", ".venv/", "web/vendor/", "web/node_modules/",
             "tests/browser/node_modules/", "env.json")
PATH_LIKE = re.compile(r"^(?:[\w.-]+/)*[\w.-]+\.(?:rs|js|mjs|html|yaml|yml|json|toml|sh|py|md|txt)$|^(?:[\w.-]+/)+$")
TOP = ("src/", "tests/", "web/", "events/", "benches/", "docs/", "examples/", ".ci/")


def check_paths(repo, problems):
    """Every repo path in inline code (`src/token.rs`, `web/`) and every line of a layout block
    (after `<!-- layout -->`) names something that exists."""
    for page, text in repo.pages.items():
        prose, blocks = split_code(text)
        named = [c for c in inline_code(prose) if PATH_LIKE.match(c) and (c.startswith(TOP) or "/" not in c)]
        for block, marker in blocks:
            if marker == "<!-- layout -->":
                named += [line.split()[0] for line in block.split("\n") if line.strip()]
        for path in named:
            if path.startswith(GENERATED):
                continue
            if "/" not in path and not path.endswith((".md", ".yaml", ".toml")):
                continue  # a bare module name (tvm-client.js) need not be at the top level
            if not os.path.exists(os.path.join(repo.root, path)):
                problems.append(f"{page}: `{path}`: no such file or directory in the repo")


def run_checks(root):
    repo = Repo(root)
    problems, notes = [], set()
    check_size_and_order(repo, problems)
    check_links(repo, problems)
    check_mirrors(repo, problems)
    check_parameter_table(repo, problems)
    check_guided(repo, problems)
    check_sam_commands(repo, problems, notes)
    if "checked-token-scopes" in notes:
        notes.discard("checked-token-scopes")
    else:
        problems.append("no documented `sam deploy --parameter-overrides` passes TokenScopes (the signed-in deploy)")
    check_aws_commands(repo, problems)
    check_names(repo, problems)
    check_paths(repo, problems)
    return problems, notes


# ---------------------------------------------------------------------------- self-test


def scratch_copy(root, into):
    """The repo without builds, tools and history: what the docs may name."""
    skip = shutil.ignore_patterns(".git", "target", ".venv", "node_modules", ".aws-sam", "test-output", "vendor")
    for name in os.listdir(root):
        src, dst = os.path.join(root, name), os.path.join(into, name)
        if skip(root, [name]):
            continue
        if os.path.isdir(src):
            shutil.copytree(src, dst, ignore=skip, symlinks=True)
        else:
            shutil.copy(src, dst)


def edit(path, change):
    with open(path) as f:
        text = f.read()
    new = change(text)
    if new == text:
        raise AssertionError(f"self-test: the mutation of {path} changed nothing")
    with open(path, "w") as f:
        f.write(new)


def self_test(root):
    page = "docs/signed-in-callers.md"
    broken_deploy = (
        "```sh\nsam deploy --parameter-overrides UserPoolArn=\"$POOL_ARN\" "
        "TokenScopes='{\"default\":[{\"role\":\"subscribe\",\"cache\":\"pizza\",\"topic\":\"orders-{sub}\"}]}'\n```\n"
    )

    def append(rel, text):
        return (rel, lambda s: s + "\n" + text)

    def readme_row(name, column, value):
        def change(s):
            lines = s.split("\n")
            for i, line in enumerate(lines):
                if line.startswith(f"| `{name}` |"):
                    cells = line.strip().strip("|").split("|")
                    cells[column] = f" {value} "
                    lines[i] = "|" + "|".join(cells) + "|"
            return "\n".join(lines)
        return ("README.md", change)

    mutations = [
        ("a deploy command whose JSON SAM cuts at a quote", append(page, broken_deploy), "arrives as '{'"),
        ("an override of a parameter that does not exist",
         append(page, "```sh\nsam deploy --parameter-overrides NoSuchThing=1\n```\n"), "no such parameter"),
        ("an override outside the parameter's bounds",
         append(page, "```sh\nsam deploy --parameter-overrides TokenTtlSeconds=30\n```\n"), "outside"),
        ("a TokenScopes value that is not JSON",
         append(page, "```sh\nsam deploy --parameter-overrides 'TokenScopes=\"{default\"'\n```\n"), "not JSON"),
        ("a TokenScopes value that is no documented policy",
         append(page, "```sh\nsam deploy --parameter-overrides 'TokenScopes=\"{\\\"default\\\":[]}\"'\n```\n"), "none of the documented policy files"),
        ("a policy the function refuses in this mode (its {sub} without a user pool)",
         append(page, "```sh\nsam deploy --parameter-overrides " + shlex.quote("TokenScopes=" + json.dumps(
             json.dumps(json.load(open(os.path.join(root, "docs", "pizza-scopes.json"))), separators=(",", ":")))) + "\n```\n"),
         "--check-config refuses it"),
        ("an option SAM CLI does not have",
         append(page, "```sh\nsam deploy --no-such-option\n```\n"), "No such option"),
        ("a sam command that does not exist", append(page, "```sh\nsam deplyo\n```\n"), "no such command"),
        ("a link to a missing file", append(page, "[gone](no-such-page.md)\n"), "no such file"),
        ("a link to a missing anchor", append(page, "[gone](design.md#no-such-heading)\n"), "no heading with the anchor"),
        ("a mirrored snippet that differs",
         append(page, "<!-- mirrors: LICENSE -->\n```\nnot the license\n```\n"), "differs from it"),
        ("a README over the limit", ("README.md", lambda s: s + "\n" + "x" * README_LIMIT + "\n"), "bytes, more than"),
        ("README sections out of order",
         ("README.md", lambda s: s.replace("## Browser\n", "## Browsers\n", 1)), "README sections are"),
        ("the signed-in deploy command gone",
         (page, lambda s: re.sub(r"^sam deploy --parameter-overrides UserPoolArn.*\n.*TokenScopes.*\n", "", s, flags=re.M)),
         "passes TokenScopes"),
        ("a page nothing links to", ("docs/orphan.md", None), "not reachable"),
        ("a wrong default in the parameters table", readme_row("CacheName", 3, "`pasta`"), "default is 'pizza'"),
        ("wrong bounds in the parameters table", readme_row("TokenTtlSeconds", 2, "1..=86400"), "bounds are 120..="),
        ("a wrong variable in the parameters table", readme_row("CacheName", 1, "`TOKEN_TTL_SECONDS`"), "is not how the function's"),
        ("a guided prompt left out",
         ("README.md", lambda s: re.sub(r"^Disable rollback.*\n", "", s, count=1, flags=re.M)), "missing ['Disable rollback']"),
        ("a wrong default at a guided prompt",
         ("README.md", lambda s: s.replace("Parameter CacheName [pizza]", "Parameter CacheName [pasta]", 1)), "shows [pasta]"),
        ("a path that does not exist", append(page, "See `src/vending.rs`.\n"), "no such file or directory"),
        ("a make target that does not exist", append(page, "`make no-such-target`\n"), "no such Makefile target"),
        ("an AWS CLI option the API does not have",
         append(page, "```sh\naws cognito-idp create-group --user-pool-id x --group staff\n```\n"), "has no option --group"),
        ("an AWS CLI call without a required option",
         append(page, "```sh\nX=$(aws secretsmanager put-secret-value --secret-string x)\n```\n"), "needs --secret-id"),
    ]
    failures = []
    with tempfile.TemporaryDirectory() as base:
        clean = os.path.join(base, "clean")
        os.makedirs(clean)
        scratch_copy(root, clean)
        # The self-test mutates a mirror of LICENSE; a correct one must pass.
        edit(os.path.join(clean, page), lambda s: s + "\n<!-- mirrors: LICENSE -->\n```\n" + open(os.path.join(root, "LICENSE")).read() + "```\n")
        problems, _ = run_checks(clean)
        if problems:
            failures.append(f"the unbroken copy fails: {problems}")
        for i, (what, (rel, change), expect) in enumerate(mutations):
            work = os.path.join(base, f"m{i}")
            shutil.copytree(clean, work)
            path = os.path.join(work, rel)
            if change is None:
                with open(path, "w") as f:
                    f.write("# Orphan\n")
            else:
                edit(path, change)
            problems, _ = run_checks(work)
            if not any(expect in p for p in problems):
                failures.append(f"{what}: not reported (expected {expect!r}; got {problems})")
    return failures, len(mutations)


def main():
    root = os.getcwd()
    problems, notes = run_checks(root)
    problems = list(dict.fromkeys(problems))
    for p in problems:
        print(f"check-readme: {p}", file=sys.stderr)
    for n in sorted(notes):
        print(f"check-readme: note: {n}", file=sys.stderr)
    if "--no-self-test" not in sys.argv:
        failures, count = self_test(root)
        for f in failures:
            print(f"check-readme self-test: {f}", file=sys.stderr)
        if failures:
            sys.exit(1)
        print(f"check-readme self-test: an unbroken copy passes and all {count} broken copies are caught")
    if problems:
        sys.exit(1)
    print(
        "check-readme: README size and sections, links and anchors, mirrored snippets, the parameters "
        "table, the guided prompts and every sam command (SAM CLI's parser) agree with the repo"
    )


if __name__ == "__main__":
    main()
