#!/usr/bin/env python3
"""Renders an OpenAPI file of this repo as CloudFormation would include it, for one
value of the template's HasUserPool condition, so the OpenAPI validator checks what
API Gateway receives in each mode.

Usage: render-openapi.py <with-user-pool|open> <spec.yaml> <out.yaml>

`Fn::If: [HasUserPool, a, b]` becomes a or b (an `AWS::NoValue` branch drops the
key); `Fn::Sub` and `Ref` become placeholder strings (their values are deploy-time
facts that the validator has no opinion on). Any other condition or intrinsic is
an error: the renderer must know every one the specs use.
"""
import sys

import yaml

DROP = object()


def render(node, has_user_pool):
    if isinstance(node, dict):
        if len(node) == 1:
            (key, value), = node.items()
            if key == "Fn::If":
                condition, yes, no = value
                if condition != "HasUserPool":
                    raise SystemExit(f"unknown condition {condition!r}")
                return render(yes if has_user_pool else no, has_user_pool)
            if key == "Ref":
                return DROP if value == "AWS::NoValue" else f"<{value}>"
            if key == "Fn::Sub":
                return f"<Sub {value}>"
            if key.startswith("Fn::"):
                raise SystemExit(f"unknown intrinsic {key}")
        out = {}
        for key, value in node.items():
            rendered = render(value, has_user_pool)
            if rendered is not DROP:
                out[key] = rendered
        return out
    if isinstance(node, list):
        return [r for r in (render(v, has_user_pool) for v in node) if r is not DROP]
    return node


def main():
    mode, source, target = sys.argv[1:4]
    if mode not in ("with-user-pool", "open"):
        raise SystemExit("mode: with-user-pool or open")
    with open(source) as f:
        spec = yaml.safe_load(f)
    with open(target, "w") as f:
        yaml.safe_dump(render(spec, mode == "with-user-pool"), f, sort_keys=False)


if __name__ == "__main__":
    main()
