"""Translate infra/template.yaml the way CloudFormation's SAM transform will, offline.

    python sam_translate.py TEMPLATE OUT.json

Local CodeUri folders are replaced by placeholder S3 objects first (what
`sam package` does), and transforms other than SAM's are kept in the output so
cfn-lint still accepts what they own (the SecretsManager transform's
HostedRotationLambda). The output is what cfn-lint and checkov then check as
plain CloudFormation: AWS::Serverless::* resources become the AWS::Lambda,
AWS::IAM, ... resources AWS will really create.
"""

import json
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

SAM = "AWS::Serverless-2016-10-31"


class NoManagedPolicyLookup:
    """The template names managed policies by ARN only, so nothing is looked up (no AWS call)."""

    def load(self):
        return {}


def main(src: str, dst: str) -> None:
    with open(src, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    transforms = template.get("Transform", [])
    transforms = transforms if isinstance(transforms, list) else [transforms]
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = "s3://sam-package-placeholder/" + props["CodeUri"].strip("./").replace("/", "-") + ".zip"
    out = transform(template, {}, NoManagedPolicyLookup())
    others = [t for t in transforms if t != SAM]
    if others:
        out["Transform"] = others if len(others) > 1 else others[0]
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
