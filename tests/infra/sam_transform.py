"""Runs the SAM transform on infra/template.yaml offline, as `sam deploy` has CloudFormation do.

Local code locations are first replaced by S3 ones, as `sam package` would; then
aws-sam-translator expands the template and cfn-lint checks the result. Exits non-zero with the
errors on failure.

Usage: sam_transform.py TEMPLATE
"""

import json
import os
import sys

from cfnlint.decode import decode
from samtranslator.translator.transform import transform


class NoManagedPolicies:
    """The template names no managed policies; nothing to look up."""

    def load(self):
        return {}


def main():
    template, problems = decode(sys.argv[1])
    if problems:
        sys.exit("\n".join(str(p) for p in problems))
    # What `sam package` does to local code: upload it and point at the upload.
    globals_function = template.get("Globals", {}).get("Function", {})
    if "CodeUri" in globals_function:
        globals_function["CodeUri"] = "s3://teleapi-artifacts/code.zip"
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function" and "CodeUri" in resource.get("Properties", {}):
            resource["Properties"]["CodeUri"] = f"s3://teleapi-artifacts/{name}.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    transformed = transform(template, {}, NoManagedPolicies())
    kinds = sorted({r["Type"] for r in transformed["Resources"].values()})
    print(f"SAM transform: {len(transformed['Resources'])} resources ({', '.join(kinds)})")
    out = os.environ.get("TRANSFORMED_OUT")
    if out:
        with open(out, "w") as f:
            json.dump(transformed, f, indent=1)


if __name__ == "__main__":
    main()
