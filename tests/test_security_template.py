"""The deployment template restricts what the function may send: with AllowedSenders,
its SES permission carries the ``ses:FromAddress`` condition, and both functions get the
same list as ``MAILSPOOL_ALLOWED_SENDERS``."""

from __future__ import annotations

from typing import Any

from cfnlint.decode import cfn_yaml
from click.testing import CliRunner

from mailspool.cli.aws import aws as aws_cli


def decoded(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(aws_cli, ["template", *args])
    assert result.exit_code == 0, result.output
    template: dict[str, Any] = cfn_yaml.loads(result.output)
    return template


def evaluate(node: Any, parameters: dict[str, str]) -> Any:
    """The intrinsic functions the condition uses (Split, Join, Sub), as CloudFormation
    evaluates them for the parameter values given."""
    if isinstance(node, list):
        return [evaluate(item, parameters) for item in node]
    if not isinstance(node, dict) or len(node) != 1:
        return node
    [(name, argument)] = node.items()
    if name == "Fn::Split":
        separator, text = argument
        return str(evaluate(text, parameters)).split(separator)
    if name == "Fn::Join":
        separator, items = argument
        return separator.join(evaluate(items, parameters))
    if name == "Fn::Sub":
        text = argument
        for key, value in parameters.items():
            text = text.replace("${" + key + "}", value)
        return text
    return {name: evaluate(argument, parameters)}


def ses_statement(template: dict[str, Any]) -> dict[str, Any]:
    [policy] = template["Resources"]["FunctionRole"]["Properties"]["Policies"]
    [statement] = [
        s for s in policy["PolicyDocument"]["Statement"] if s.get("Sid") == "SendThroughSes"
    ]
    return statement


def test_the_ses_permission_carries_the_from_address_condition() -> None:
    template = decoded("--set", "AllowedSenders=news@example.com,@example.org")
    parameter = template["Parameters"]["AllowedSenders"]
    assert parameter["Default"] == "news@example.com,@example.org"
    condition = ses_statement(template)["Condition"]["Fn::If"]
    assert condition[0] == "RestrictSenders"
    assert template["Conditions"]["RestrictSenders"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AllowedSenders"}, ""]}]
    }
    patterns = evaluate(
        condition[1]["StringLike"]["ses:FromAddress"], {"AllowedSenders": parameter["Default"]}
    )
    assert [p for p in patterns if p] == ["news@example.com", "*@example.org"]
    assert condition[2] == {"Ref": "AWS::NoValue"}  # empty list: no condition, any sender


def test_a_domain_first_in_the_list_becomes_a_pattern_too() -> None:
    template = decoded()
    condition = ses_statement(template)["Condition"]["Fn::If"][1]
    patterns = evaluate(
        condition["StringLike"]["ses:FromAddress"], {"AllowedSenders": "@a.example,b@c.example"}
    )
    assert [p for p in patterns if p] == ["*@a.example", "b@c.example"]


def test_both_functions_get_the_list_as_mailspool_allowed_senders() -> None:
    resources = decoded()["Resources"]
    for name in ("DeliverFunction", "SweeperFunction"):
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        assert variables["MAILSPOOL_ALLOWED_SENDERS"] == {"Ref": "AllowedSenders"}
