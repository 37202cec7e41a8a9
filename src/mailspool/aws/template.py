"""The CloudFormation template of the whole stack: ``mailspool aws template``.

```
bucket ──ObjectCreated queue/*.json──▶ SQS queue ──▶ deliver function ──▶ SES
   │                                     └─ after 5 receives ─▶ dead-letter queue
   └── sweeper function (every 5 minutes): re-drives old batches, reports late e-mails
```

An SQS queue between the bucket and the function breaks the usual circular dependency
(the queue policy names the bucket by the name parameter, not by a reference), batches
events, retries with a visibility timeout and keeps what keeps failing in a DLQ.
The lifecycle rule expires finished batches only (``done/``, ``ledger/``, stale
``.leases/``): never ``queue/``, ``failed/``, ``quarantine/`` or ``blobs/`` (a blob
may be shared by a batch written today). The role may touch the bucket's prefix, send
through SES identities of the account and region, and nothing else.
"""

from __future__ import annotations

from typing import Any

from mailspool.aws.yaml import dump
from mailspool.spool import layout

__all__ = ["build_template", "render_template"]

_PARTITION_ARN = "arn:${AWS::Partition}"
_CHECKOV_SKIPS = {
    "bucket": [
        ("CKV_AWS_18", "access logging is the AccessLogBucket parameter (a second bucket)"),
    ],
    "function": [
        ("CKV_AWS_117", "reaches only S3, SQS and SES public endpoints: a VPC adds NAT cost"),
        ("CKV_AWS_173", "environment holds no secrets (URLs and numbers only)"),
    ],
    "queue": [
        (
            "CKV_AWS_27",
            "encrypted with SSE-SQS (SqsManagedSseEnabled): S3 notifications cannot write to "
            "a queue under the AWS-managed KMS key",
        )
    ],
    "log": [("CKV_AWS_158", "logs hold no bodies or addresses; KMS key optional to add")],
}


def render_template(**options: Any) -> str:
    """The template as YAML text; options as for ``build_template``."""
    return dump(build_template(**options))


def build_template(
    *,
    bucket: str | None = None,
    prefix: str = "",
    sender: str | None = None,
    ses_region: str = "",
    expire_days: int = 14,
    runtime: str = "python3.11",
) -> dict[str, Any]:
    """The template as a dict. ``prefix`` is fixed here (it shapes ARNs and filters);
    the rest are parameters whose defaults the arguments set."""
    root = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "mailspool: deferred e-mail from S3 batches through Lambda and SES",
        "Parameters": _parameters(bucket, sender, ses_region, expire_days),
        "Conditions": {
            "UseKms": {"Fn::Not": [{"Fn::Equals": [{"Ref": "KmsKeyArn"}, ""]}]},
            "LogAccess": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AccessLogBucket"}, ""]}]},
            "SesInStackRegion": {"Fn::Equals": [{"Ref": "SesRegion"}, ""]},
            "HasAlarmTopic": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]},
        },
        "Resources": {
            **_storage(root),
            **_queues(),
            "FunctionRole": _role(root),
            **_functions(root, runtime),
            **_alarms(),
        },
        "Outputs": {
            "BucketName": {"Value": {"Ref": "Bucket"}},
            "StoreUrl": {"Value": {"Fn::Sub": f"s3://${{Bucket}}/{root}"}},
            "NotificationQueueUrl": {"Value": {"Ref": "NotifyQueue"}},
            "DeadLetterQueueUrl": {"Value": {"Ref": "DeadLetterQueue"}},
            "DeliverFunction": {"Value": {"Ref": "DeliverFunction"}},
        },
    }


def _parameters(
    bucket: str | None, sender: str | None, ses_region: str, expire_days: int
) -> dict[str, Any]:
    def param(kind: str, description: str, default: Any = None, **extra: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {"Type": kind, "Description": description, **extra}
        if default is not None:
            spec["Default"] = default
        return spec

    return {
        "BucketName": param("String", "The bucket to create for batches", bucket),
        "CodeBucket": param("String", "Bucket holding the function zip (mailspool aws package)"),
        "CodeKey": param("String", "Key of the function zip", "mailspool/function.zip"),
        "Sender": param("String", "From when an e-mail has none", sender or ""),
        "SesRegion": param("String", "SES region (empty: the stack's region)", ses_region),
        "MaxRate": param(
            "String",
            "E-mails per second per invocation: SES MaxSendRate / ReservedConcurrency",
            "7",
        ),
        "ReservedConcurrency": param(
            "Number", "Invocations of the deliver function at once", 2, MinValue=2
        ),
        "FunctionTimeout": param("Number", "Seconds per invocation", 60, MinValue=10, MaxValue=900),
        "ExpireDays": param(
            "Number", "Days before finished batches and ledgers expire", expire_days, MinValue=1
        ),
        "Versioning": param(
            "String", "Bucket versioning", "Enabled", AllowedValues=["Enabled", "Suspended"]
        ),
        "KmsKeyArn": param("String", "KMS key for bucket encryption (empty: SSE-S3)", ""),
        "AccessLogBucket": param("String", "Bucket for S3 access logs (empty: none)", ""),
        "LogRetentionDays": param("Number", "Days to keep function logs", 365),
        "AlarmTopicArn": param("String", "SNS topic for alarms (empty: no action)", ""),
    }


def _storage(root: str) -> dict[str, Any]:
    def expire(rule_id: str, folder: str, days: Any) -> dict[str, Any]:
        return {
            "Id": rule_id,
            "Status": "Enabled",
            "Prefix": root + folder,
            "ExpirationInDays": days,
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }

    encryption = {
        "Fn::If": [
            "UseKms",
            {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Ref": "KmsKeyArn"}},
            {"SSEAlgorithm": "AES256"},
        ]
    }
    bucket = {
        "Type": "AWS::S3::Bucket",
        "DependsOn": "NotifyQueuePolicy",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Metadata": _skips("bucket"),
        "Properties": {
            "BucketName": {"Ref": "BucketName"},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": encryption, "BucketKeyEnabled": True}
                ]
            },
            "VersioningConfiguration": {"Status": {"Ref": "Versioning"}},
            "LoggingConfiguration": {
                "Fn::If": [
                    "LogAccess",
                    {"DestinationBucketName": {"Ref": "AccessLogBucket"}, "LogFilePrefix": "s3/"},
                    {"Ref": "AWS::NoValue"},
                ]
            },
            "LifecycleConfiguration": {
                "Rules": [
                    expire("ExpireFinishedBatches", layout.DONE, {"Ref": "ExpireDays"}),
                    expire("ExpireLedgers", layout.LEDGER, {"Ref": "ExpireDays"}),
                    expire("ExpireStaleLeases", ".leases/", 1),
                ]
            },
            "NotificationConfiguration": {
                "QueueConfigurations": [
                    {
                        "Event": "s3:ObjectCreated:*",
                        "Queue": {"Fn::GetAtt": ["NotifyQueue", "Arn"]},
                        "Filter": {
                            "S3Key": {
                                "Rules": [
                                    {"Name": "prefix", "Value": root + layout.QUEUE},
                                    {"Name": "suffix", "Value": ".json"},
                                ]
                            }
                        },
                    }
                ]
            },
        },
    }
    tls_only = {
        "Type": "AWS::S3::BucketPolicy",
        "Properties": {
            "Bucket": {"Ref": "Bucket"},
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "TlsOnly",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [
                            {"Fn::Sub": f"{_PARTITION_ARN}:s3:::${{BucketName}}"},
                            {"Fn::Sub": f"{_PARTITION_ARN}:s3:::${{BucketName}}/*"},
                        ],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ],
            },
        },
    }
    return {"Bucket": bucket, "BucketTlsPolicy": tls_only}


def _queues() -> dict[str, Any]:
    dead_letter = {
        "Type": "AWS::SQS::Queue",
        "Metadata": _skips("queue"),
        "Properties": {"MessageRetentionPeriod": 1209600, "SqsManagedSseEnabled": True},
    }
    notify = {
        "Type": "AWS::SQS::Queue",
        "Metadata": _skips("queue"),
        "Properties": {
            "VisibilityTimeout": 900,  # at least 6 x the function timeout (AWS advice)
            "SqsManagedSseEnabled": True,
            "RedrivePolicy": {
                "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
                "maxReceiveCount": 5,
            },
        },
    }
    policy = {
        "Type": "AWS::SQS::QueuePolicy",
        "Properties": {
            "Queues": [{"Ref": "NotifyQueue"}],
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "BucketNotifications",
                        "Effect": "Allow",
                        "Principal": {"Service": "s3.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                        "Resource": {"Fn::GetAtt": ["NotifyQueue", "Arn"]},
                        "Condition": {
                            "ArnEquals": {
                                "aws:SourceArn": {
                                    "Fn::Sub": f"{_PARTITION_ARN}:s3:::${{BucketName}}"
                                }
                            },
                            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
                        },
                    }
                ],
            },
        },
    }
    return {"DeadLetterQueue": dead_letter, "NotifyQueue": notify, "NotifyQueuePolicy": policy}


def policy_statements(root: str) -> list[dict[str, Any]]:
    """The function role's permissions (least privilege); ``docs/aws.md`` prints them."""
    bucket_arn = f"{_PARTITION_ARN}:s3:::${{BucketName}}"
    ses_arn = f"{_PARTITION_ARN}:ses:${{SesRegionName}}:${{AWS::AccountId}}"
    listing: dict[str, Any] = {
        "Sid": "ListStore",
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": {"Fn::Sub": bucket_arn},
    }
    if root:
        # IfExists: HeadObject's implicit ListBucket check (404, not 403) has no prefix.
        listing["Condition"] = {"StringLikeIfExists": {"s3:prefix": [f"{root}*"]}}
    ses_region = {"Fn::If": ["SesInStackRegion", {"Ref": "AWS::Region"}, {"Ref": "SesRegion"}]}
    return [
        {
            "Sid": "StoreObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": {"Fn::Sub": f"{bucket_arn}/{root}*"},
        },
        listing,
        {
            "Sid": "SendThroughSes",
            "Effect": "Allow",
            "Action": ["ses:SendEmail", "ses:SendRawEmail"],
            "Resource": [
                {"Fn::Sub": [f"{ses_arn}:identity/*", {"SesRegionName": ses_region}]},
                {"Fn::Sub": [f"{ses_arn}:configuration-set/*", {"SesRegionName": ses_region}]},
            ],
        },
        {
            "Sid": "ReadSendQuota",
            "Effect": "Allow",
            "Action": ["ses:GetAccount", "ses:GetSendQuota"],
            "Resource": "*",
        },
        {
            "Sid": "ConsumeNotifications",
            "Effect": "Allow",
            "Action": [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ChangeMessageVisibility",
            ],
            "Resource": {"Fn::GetAtt": ["NotifyQueue", "Arn"]},
        },
        {
            "Sid": "DeadLetters",
            "Effect": "Allow",
            "Action": "sqs:SendMessage",
            "Resource": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
        },
        {
            "Sid": "Logs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [
                {"Fn::GetAtt": ["DeliverLogGroup", "Arn"]},
                {"Fn::GetAtt": ["SweeperLogGroup", "Arn"]},
            ],
        },
        {
            "Fn::If": [
                "UseKms",
                {
                    "Sid": "BucketKey",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": {"Ref": "KmsKeyArn"},
                },
                {"Ref": "AWS::NoValue"},
            ]
        },
    ]


def _role(root: str) -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            },
            "Policies": [
                {
                    "PolicyName": "mailspool",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": policy_statements(root),
                    },
                }
            ],
        },
    }


def _functions(root: str, runtime: str) -> dict[str, Any]:
    environment = {
        "MAILSPOOL_STORE": {"Fn::Sub": f"s3://${{BucketName}}/{root}"},
        "MAILSPOOL_TRANSPORT": {
            "Fn::If": [
                "SesInStackRegion",
                {"Fn::Sub": "ses://${AWS::Region}"},
                {"Fn::Sub": "ses://${SesRegion}"},
            ]
        },
        "MAILSPOOL_MAX_RATE": {"Ref": "MaxRate"},
        "MAILSPOOL_SENDER": {"Ref": "Sender"},
    }

    def function(name: str, handler: str, timeout: Any, concurrency: Any) -> dict[str, Any]:
        return {
            "Type": "AWS::Lambda::Function",
            "DependsOn": f"{name}LogGroup",
            "Metadata": _skips("function"),
            "Properties": {
                "FunctionName": {"Fn::Sub": f"${{AWS::StackName}}-{name.lower()}"},
                "Runtime": runtime,
                "Handler": handler,
                "Code": {"S3Bucket": {"Ref": "CodeBucket"}, "S3Key": {"Ref": "CodeKey"}},
                "Role": {"Fn::GetAtt": ["FunctionRole", "Arn"]},
                "Timeout": timeout,
                "MemorySize": 512,
                "ReservedConcurrentExecutions": concurrency,
                "DeadLetterConfig": {"TargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}},
                "TracingConfig": {"Mode": "PassThrough"},
                "Environment": {"Variables": environment},
            },
        }

    def log_group(name: str) -> dict[str, Any]:
        return {
            "Type": "AWS::Logs::LogGroup",
            "Metadata": _skips("log"),
            "Properties": {
                "LogGroupName": {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}-{name.lower()}"},
                "RetentionInDays": {"Ref": "LogRetentionDays"},
            },
        }

    deliver = function(
        "Deliver",
        "mailspool.aws.handler",
        {"Ref": "FunctionTimeout"},
        {"Ref": "ReservedConcurrency"},
    )
    sweeper = function("Sweeper", "mailspool.aws.sweeper_handler", 300, 1)
    return {
        "DeliverLogGroup": log_group("Deliver"),
        "SweeperLogGroup": log_group("Sweeper"),
        "DeliverFunction": deliver,
        "SweeperFunction": sweeper,
        "DeliverEvents": {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {
                "EventSourceArn": {"Fn::GetAtt": ["NotifyQueue", "Arn"]},
                "FunctionName": {"Ref": "DeliverFunction"},
                "BatchSize": 10,
                "MaximumBatchingWindowInSeconds": 1,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "ScalingConfig": {"MaximumConcurrency": {"Ref": "ReservedConcurrency"}},
            },
        },
        "SweeperSchedule": {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "ScheduleExpression": "rate(5 minutes)",
                "State": "ENABLED",
                "Targets": [{"Id": "sweeper", "Arn": {"Fn::GetAtt": ["SweeperFunction", "Arn"]}}],
            },
        },
        "SweeperPermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": {"Ref": "SweeperFunction"},
                "Principal": "events.amazonaws.com",
                "SourceArn": {"Fn::GetAtt": ["SweeperSchedule", "Arn"]},
            },
        },
    }


def _alarms() -> dict[str, Any]:
    actions = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}

    def alarm(description: str, namespace: Any, metric: str, dimensions: Any) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "AlarmDescription": description,
            "Namespace": namespace,
            "MetricName": metric,
            "Statistic": "Maximum",
            "Period": 300,
            "EvaluationPeriods": 1,
            "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": actions,
        }
        if dimensions:
            properties["Dimensions"] = dimensions
        return {"Type": "AWS::CloudWatch::Alarm", "Properties": properties}

    return {
        "LateEmailsMetric": {
            "Type": "AWS::Logs::MetricFilter",
            "Properties": {
                "LogGroupName": {"Ref": "SweeperLogGroup"},
                "FilterPattern": '{ $.event = "sweep" }',
                "MetricTransformations": [
                    {
                        "MetricNamespace": {"Fn::Sub": "mailspool/${AWS::StackName}"},
                        "MetricName": "LateEmails",
                        "MetricValue": "$.late",
                        "DefaultValue": 0,
                    }
                ],
            },
        },
        "LateEmailsAlarm": alarm(
            "E-mails waiting longer than MAILSPOOL_ALERT_AFTER (the sweeper's report)",
            {"Fn::Sub": "mailspool/${AWS::StackName}"},
            "LateEmails",
            None,
        ),
        "DeadLettersAlarm": alarm(
            "Notifications that failed 5 times are in the dead-letter queue",
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}],
        ),
        "DeliverErrorsAlarm": alarm(
            "The deliver function raised",
            "AWS/Lambda",
            "Errors",
            [{"Name": "FunctionName", "Value": {"Ref": "DeliverFunction"}}],
        ),
    }


def _skips(kind: str) -> dict[str, Any]:
    return {"checkov": {"skip": [{"id": i, "comment": c} for i, c in _CHECKOV_SKIPS[kind]]}}
