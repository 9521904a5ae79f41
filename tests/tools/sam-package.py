#!/usr/bin/env python3
"""`sam package` (the step `sam deploy` runs first) of both x86_64 test builds,
the template on its own and examples/pizza-app with the template nested, into
an S3 bucket of a loopback moto server (moto speaks S3's real protocol; nothing
reaches AWS). Checks what CloudFormation would be handed:

- the function's code is a zip holding an executable `bootstrap` of the built
  architecture;
- every AWS::Include Location is an uploaded copy of the spec file it named;
- the example's nested application became an uploaded template that is this
  repo's template (CreateApis and the other parameters intact) with its own
  code and specs uploaded the same way;
- every packaged test build accepts Architecture=x86_64 only (what its code is).

Usage: sam-package.py <build dir> <example build dir>
"""
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from urllib.parse import urlparse

import boto3
from samtranslator.yaml_helper import yaml_parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUCKET = "tvm-package-test"
ELF_MACHINES = {0x3E: "x86_64", 0xB7: "aarch64"}


def check(condition, message):
    if not condition:
        sys.exit(f"sam-package: {message}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def s3_key(location):
    """The key of an s3://bucket/key or http(s)://host/bucket/key location in our bucket."""
    url = urlparse(location)
    if url.scheme == "s3":
        check(url.netloc == BUCKET, f"{location} is not in {BUCKET}")
        return url.path.lstrip("/")
    bucket, _, key = url.path.lstrip("/").partition("/")
    check(bucket == BUCKET, f"{location} is not in {BUCKET}")
    return key


class Packaged:
    def __init__(self, s3, template):
        self.s3, self.template = s3, template

    def object(self, location):
        return self.s3.get_object(Bucket=BUCKET, Key=s3_key(location))["Body"].read()

    def check_function(self, name, arch):
        code = self.template["Resources"][name]["Properties"]["CodeUri"]
        check(isinstance(code, str) and code.startswith("s3://"), f"{name} code is {code}")
        with zipfile.ZipFile(io.BytesIO(self.object(code))) as z:
            info = z.getinfo("bootstrap")
            binary = z.read(info)
        check(binary[:4] == b"\x7fELF", f"{name}: bootstrap is not an ELF file")
        machine = ELF_MACHINES.get(int.from_bytes(binary[18:20], "little"))
        check(machine == arch, f"{name}: bootstrap is {machine}, built for {arch}")
        check((info.external_attr >> 16) & 0o111, f"{name}: bootstrap is not executable in the zip")
        return len(binary)

    def check_includes(self, source_dir):
        """Every API's AWS::Include: an uploaded copy of the spec it named in the source template."""
        with open(os.path.join(source_dir, "template.yaml")) as f:
            source = yaml_parse(f.read())
        count = 0
        for name, r in self.template["Resources"].items():
            if r["Type"] != "AWS::Serverless::Api":
                continue
            location = r["Properties"]["DefinitionBody"]["Fn::Transform"]["Parameters"]["Location"]
            named = source["Resources"][name]["Properties"]["DefinitionBody"]["Fn::Transform"]["Parameters"]["Location"]
            with open(os.path.join(source_dir, named), "rb") as f:
                check(self.object(location) == f.read(), f"{name}: {location} is not {named}")
            count += 1
        return count


def package(build_dir, env, s3, out_dir):
    out = os.path.join(out_dir, os.path.basename(build_dir.rstrip("/")) + ".yaml")
    result = subprocess.run(
        ["sam", "package", "--template-file", "template.yaml", "--s3-bucket", BUCKET,
         "--output-template-file", out, "--region", "us-east-1"],
        cwd=build_dir, env=env, capture_output=True, text=True)
    check(result.returncode == 0, f"sam package in {build_dir} failed:\n{result.stdout}\n{result.stderr}")
    with open(out) as f:
        return Packaged(s3, yaml_parse(f.read()))


def main():
    build_dir, example_build_dir = (os.path.abspath(p) for p in sys.argv[1:3])
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="AKIDPACKAGETEST",
               AWS_SECRET_ACCESS_KEY="package-test-not-a-secret", AWS_DEFAULT_REGION="us-east-1",
               AWS_REGION="us-east-1", SAM_CLI_TELEMETRY="0")
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    server = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "moto_server"), "-H", "127.0.0.1",
                               "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                check(server.poll() is None and time.monotonic() < deadline, "moto_server did not start")
                time.sleep(0.1)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        s3.create_bucket(Bucket=BUCKET)
        with tempfile.TemporaryDirectory() as out_dir:
            main_pkg = package(build_dir, env, s3, out_dir)
            size = main_pkg.check_function("TokenVendingMachineFunction", "x86_64")
            check(main_pkg.check_includes(ROOT) == 2, "the template has not two included specs")
            print(f"sam-package template.yaml: code zip with an executable x86_64 bootstrap ({size} bytes), "
                  "both specs uploaded as included")

            example = package(example_build_dir, env, s3, out_dir)
            app = example.template["Resources"]["TokenVendingMachine"]["Properties"]
            nested = Packaged(s3, yaml_parse(example.object(app["Location"]).decode()))
            with open(os.path.join(ROOT, "template.yaml")) as f:
                ours = yaml_parse(f.read())
            check(set(nested.template["Parameters"]) == set(ours["Parameters"]), "the nested template is not template.yaml")
            # make sam-build pins a test build to its architecture (tests/tools/pin-arch.py).
            for packaged in (main_pkg, example, nested):
                arch = packaged.template["Parameters"]["Architecture"]
                check(arch["AllowedValues"] == ["x86_64"] and arch["Default"] == "x86_64",
                      f"a packaged x86_64 test build accepts Architecture {arch['AllowedValues']}")
            check(app["Parameters"]["CreateApis"] == "false", "the nested application lost CreateApis")
            nested.check_function("TokenVendingMachineFunction", "x86_64")
            check(nested.check_includes(ROOT) == 2, "the nested template's specs were not uploaded")
            check(example.check_includes(os.path.join(ROOT, "examples/pizza-app")) == 2, "the example's specs")
            print("sam-package examples/pizza-app: the nested template uploaded (template.yaml's parameters, "
                  "CreateApis false) with its own code zip and specs; the app's specs uploaded")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
