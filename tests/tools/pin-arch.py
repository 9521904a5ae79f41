#!/usr/bin/env python3
"""pin-arch.py <arch> <built template>...: a test build's templates accept only the
architecture their bootstrap was built for (Parameters.Architecture: that Default, that
one AllowedValue). `sam build --parameter-overrides Architecture=x86_64` builds x86_64 code
but leaves the built template's default at arm64, so `sam deploy --template-file <that
build>` (the command `sam build` itself suggests) would ship an x86_64 binary to an arm64
function; pinned, that deploy is x86_64 throughout or refused.
"""
import sys

import yaml


def main():
    arch, paths = sys.argv[1], sys.argv[2:]
    for path in paths:
        with open(path) as f:
            template = yaml.safe_load(f)
        parameter = template["Parameters"]["Architecture"]
        if arch not in parameter["AllowedValues"]:
            sys.exit(f"pin-arch: {path} does not allow {arch}")
        parameter["Default"], parameter["AllowedValues"] = arch, [arch]
        with open(path, "w") as f:
            yaml.safe_dump(template, f, sort_keys=False, width=1000)
        print(f"pin-arch: {path} accepts Architecture={arch} only")


if __name__ == "__main__":
    main()
