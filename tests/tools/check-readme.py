#!/usr/bin/env python3
"""Checks the README's commands against the repo, so the docs can't drift from it:

- every `make <target>` is a target of the Makefile;
- every `cargo test --test X` / `--bench X` names a file in tests/ or benches/;
- every template parameter is documented, and every `Name=` in a `--parameter-overrides`,
  every `<Placeholder>` in a code block and every backticked CamelCase name that looks like a
  parameter or output exists in template.yaml;
- no code block uses `--use-container` (SAM can't build Rust in a container) or puts
  `https://` before an output that already carries it;
- the browser example after `<!-- web/order-updates.js -->` is that file, byte for byte.
"""
import os
import re
import sys

import yaml


class CfnLoader(yaml.SafeLoader):
    pass


for tag in ("Ref", "Sub", "GetAtt", "If", "Not", "Equals", "Join", "Select", "Split"):
    CfnLoader.add_constructor(f"!{tag}", lambda loader, node: None)


def main():
    readme = open("README.md").read()
    makefile = open("Makefile").read()
    template = yaml.load(open("template.yaml"), Loader=CfnLoader)
    params = set(template["Parameters"])
    outputs = set(template["Outputs"])
    resources = set(template["Resources"])
    problems = []

    blocks = re.findall(r"```[a-z]*\n(.*?)```", readme, re.S)
    # Commands live in code blocks and in `inline code`.
    in_blocks = "\n".join(blocks)
    code = "\n".join(blocks + re.findall(r"`([^`\n]+)`", readme))

    targets = set(re.findall(r"^([a-zA-Z][\w-]*):", makefile, re.M))
    for target in sorted(set(re.findall(r"\bmake ([a-z][\w-]*)", code))):
        if target not in targets:
            problems.append(f"`make {target}`: no such Makefile target")

    for line in re.findall(r"cargo (?:test|bench)[^\n]*", code):
        for kind, name in re.findall(r"--(test|bench) ([a-z_]+)", line):
            folder = "tests" if kind == "test" else "benches"
            if not os.path.exists(f"{folder}/{name}.rs"):
                problems.append(f"`--{kind} {name}`: no {folder}/{name}.rs")

    for name in sorted(params):
        if name not in readme:
            problems.append(f"parameter {name} is not documented in the README")

    for overrides in re.findall(r"--parameter-overrides ((?:\S+=\S+\s*)+)", in_blocks):
        for name in re.findall(r"([A-Za-z]+)=", overrides):
            if name not in params:
                problems.append(f"--parameter-overrides {name}=: no such parameter")
    for name in sorted(set(re.findall(r"<([A-Z][A-Za-z]+)>", in_blocks))):
        if name not in outputs | params:
            problems.append(f"<{name}> in a code block: no such output or parameter")
    looks_like = re.compile(r"`([A-Z][a-z]+(?:[A-Z][a-z0-9]+)+)`")
    for name in sorted(set(looks_like.findall(readme))):
        if re.search(r"(Seconds|Arn|Limit|Threshold|Endpoint|Email|Origin|Scopes|ApiKey|Namespace|FunctionName|LogGroupName)$", name):
            if name not in params | outputs | resources:
                problems.append(f"`{name}`: not a parameter, output or resource of template.yaml")
    if "--use-container" in in_blocks:
        problems.append("a code block uses `--use-container`: SAM cannot build Rust in a container")
    if re.search(r"https://<[A-Za-z]+Endpoint>", readme):
        problems.append("`https://<...Endpoint>`: the outputs already start with https://")

    marker = "<!-- web/order-updates.js -->\n```js\n"
    at = readme.find(marker)
    if at < 0:
        problems.append("the browser example marker is missing")
    else:
        shown = readme[at + len(marker):].split("```", 1)[0]
        if shown != open("web/order-updates.js").read():
            problems.append("the README's browser example differs from web/order-updates.js")

    for p in problems:
        print(f"check-readme: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print("check-readme: make targets, test names, parameters, outputs and the browser example agree")


if __name__ == "__main__":
    main()
