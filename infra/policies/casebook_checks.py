"""Casebook's own checkov policies for infra/template.yaml.

validate.sh runs checkov on the template as CloudFormation sees it after the
SAM transform (AWS::Serverless::Function becomes AWS::Lambda::Function, and so
on), so these checks look at plain CloudFormation resource types. A value that
is an intrinsic function (Ref, Fn::If, ...) cannot be judged offline and fails
a check whenever the check needs a literal: security settings must be literal.
"""

from __future__ import annotations

from typing import Any

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

PASSED, FAILED = CheckResult.PASSED, CheckResult.FAILED


def props(conf: dict[str, Any]) -> dict[str, Any]:
    value = conf.get("Properties")
    return value if isinstance(value, dict) else {}


def is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def is_false(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.lower() == "false")


def present(value: Any) -> bool:
    """Set to something: a literal or an intrinsic function (Ref, GetAtt, ...)."""
    return value not in (None, "", [], {})


class BucketKmsEncrypted(BaseResourceCheck):
    """Every bucket encrypts by default with a KMS key it names."""

    def __init__(self) -> None:
        super().__init__(
            name="S3 bucket encrypts with a named KMS key by default",
            id="CKV_CASEBOOK_1",
            categories=[CheckCategories.ENCRYPTION],
            supported_resources=["AWS::S3::Bucket"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        rules = (props(conf).get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration")
        if not isinstance(rules, list) or not rules:
            return FAILED
        for rule in rules:
            default = (rule or {}).get("ServerSideEncryptionByDefault") or {}
            if default.get("SSEAlgorithm") not in ("aws:kms", "aws:kms:dsse"):
                return FAILED
            if not present(default.get("KMSMasterKeyID")):
                return FAILED
        return PASSED


class BucketNotPublic(BaseResourceCheck):
    """Every bucket blocks public access four ways and has ACLs disabled."""

    def __init__(self) -> None:
        super().__init__(
            name="S3 bucket blocks all public access and disables ACLs",
            id="CKV_CASEBOOK_2",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_resources=["AWS::S3::Bucket"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        p = props(conf)
        block = p.get("PublicAccessBlockConfiguration") or {}
        keys = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        if not all(is_true(block.get(k)) for k in keys):
            return FAILED
        if p.get("AccessControl") not in (None, "Private"):
            return FAILED
        rules = (p.get("OwnershipControls") or {}).get("Rules") or []
        if not any((r or {}).get("ObjectOwnership") == "BucketOwnerEnforced" for r in rules):
            return FAILED
        return PASSED


def _principals_everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        aws = principal.get("AWS")
        aws = aws if isinstance(aws, list) else [aws]
        return "*" in aws
    return False


class BucketPolicyTlsOnlyAndNoPublicGrant(BaseResourceCheck):
    """A bucket policy denies plain HTTP and grants nothing to everyone."""

    def __init__(self) -> None:
        super().__init__(
            name="S3 bucket policy denies non-TLS requests and grants nothing to Principal *",
            id="CKV_CASEBOOK_3",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_resources=["AWS::S3::BucketPolicy"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        statements = (props(conf).get("PolicyDocument") or {}).get("Statement") or []
        statements = statements if isinstance(statements, list) else [statements]
        tls_denied = False
        for st in statements:
            st = st or {}
            effect, principal = st.get("Effect"), st.get("Principal")
            if effect == "Allow" and _principals_everyone(principal):
                return FAILED
            secure = ((st.get("Condition") or {}).get("Bool") or {}).get("aws:SecureTransport")
            actions = st.get("Action")
            actions = actions if isinstance(actions, list) else [actions]
            if effect == "Deny" and _principals_everyone(principal) and is_false(secure) and "s3:*" in actions:
                tls_denied = True
        return PASSED if tls_denied else FAILED


class QueueHasDeadLetterQueue(BaseResourceCheck):
    """Every queue redrives to a DLQ, unless it is itself a dead-letter queue.

    A dead-letter queue says so with a RedriveAllowPolicy (which source queues
    may use it, or denyAll for one that only EventBridge/Scheduler/Lambda
    destinations write to). The Rust test infra_template.rs checks the other
    half: that every such queue really is some DLQ target.
    """

    def __init__(self) -> None:
        super().__init__(
            name="SQS queue has a dead-letter queue (or is one, declared by RedriveAllowPolicy)",
            id="CKV_CASEBOOK_4",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_resources=["AWS::SQS::Queue"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        p = props(conf)
        redrive = p.get("RedrivePolicy")
        if isinstance(redrive, dict) and present(redrive.get("deadLetterTargetArn")):
            max_receive = redrive.get("maxReceiveCount")
            return PASSED if isinstance(max_receive, int) and max_receive >= 1 else FAILED
        allow = p.get("RedriveAllowPolicy")
        if isinstance(allow, dict) and allow.get("redrivePermission") in ("byQueue", "denyAll"):
            return PASSED
        return FAILED


class DatabasePrivateAndEncrypted(BaseResourceCheck):
    """The database is not publicly accessible and is encrypted with a named KMS key."""

    def __init__(self) -> None:
        super().__init__(
            name="RDS instance is not publicly accessible and encrypts storage with a named KMS key",
            id="CKV_CASEBOOK_5",
            categories=[CheckCategories.ENCRYPTION],
            supported_resources=["AWS::RDS::DBInstance", "AWS::RDS::DBCluster"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        p = props(conf)
        if self.entity_type == "AWS::RDS::DBInstance":
            # Explicitly false: the default depends on the subnet group.
            if not is_false(p.get("PubliclyAccessible")):
                return FAILED
            if present(p.get("DBClusterIdentifier")):
                return PASSED  # storage encryption is the cluster's
        if not is_true(p.get("StorageEncrypted")) or not present(p.get("KmsKeyId")):
            return FAILED
        return PASSED


class ApiMethodAuthorized(BaseResourceCheck):
    """Every REST API method has an authorizer (CORS preflight mocks excepted)."""

    def __init__(self) -> None:
        super().__init__(
            name="API Gateway method is authorized (Lambda, Cognito or IAM)",
            id="CKV_CASEBOOK_6",
            categories=[CheckCategories.IAM],
            supported_resources=["AWS::ApiGateway::Method", "AWS::ApiGatewayV2::Route"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        p = props(conf)
        if self.entity_type == "AWS::ApiGatewayV2::Route":
            return PASSED if p.get("AuthorizationType") in ("JWT", "CUSTOM", "AWS_IAM") else FAILED
        auth = p.get("AuthorizationType")
        if auth in ("CUSTOM", "COGNITO_USER_POOLS"):
            return PASSED if present(p.get("AuthorizerId")) else FAILED
        if auth == "AWS_IAM":
            return PASSED
        integration = p.get("Integration") or {}
        if p.get("HttpMethod") == "OPTIONS" and integration.get("Type") == "MOCK":
            return PASSED
        return FAILED


class ApiDefinitionAuthorized(BaseResourceCheck):
    """A REST API defined by an OpenAPI body (e.g. SAM's) secures every operation."""

    def __init__(self) -> None:
        super().__init__(
            name="API Gateway OpenAPI body declares security on every operation",
            id="CKV_CASEBOOK_7",
            categories=[CheckCategories.IAM],
            supported_resources=["AWS::ApiGateway::RestApi"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        p = props(conf)
        body = p.get("Body")
        if body is None:
            return PASSED if not present(p.get("BodyS3Location")) else FAILED
        if not isinstance(body, dict):
            return FAILED
        global_security = body.get("security")
        # checkov adds __startline__/__endline__ keys to every mapping.
        for path, operations in (body.get("paths") or {}).items():
            if path.startswith("__") or not isinstance(operations, dict):
                continue
            for verb, op in operations.items():
                if verb.startswith(("x-", "__")) or verb == "parameters":
                    continue
                if not isinstance(op, dict):
                    return FAILED
                if verb == "options" and ((op or {}).get("x-amazon-apigateway-integration") or {}).get("type") == "mock":
                    continue
                if not present((op or {}).get("security", global_security)):
                    return FAILED
        return PASSED


class LogGroupRetention(BaseResourceCheck):
    """Every log group expires its events."""

    def __init__(self) -> None:
        super().__init__(
            name="CloudWatch log group sets RetentionInDays",
            id="CKV_CASEBOOK_8",
            categories=[CheckCategories.LOGGING],
            supported_resources=["AWS::Logs::LogGroup"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        return PASSED if present(props(conf).get("RetentionInDays")) else FAILED


class FunctionLogsToOwnLogGroup(BaseResourceCheck):
    """A function logs to a log group of the template (so retention applies).

    Without LoggingConfig.LogGroup Lambda creates /aws/lambda/<name> on first
    use, with no retention.
    """

    def __init__(self) -> None:
        super().__init__(
            name="Lambda function logs to a log group defined with retention (LoggingConfig.LogGroup)",
            id="CKV_CASEBOOK_9",
            categories=[CheckCategories.LOGGING],
            supported_resources=["AWS::Lambda::Function", "AWS::Serverless::Function"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        logging = props(conf).get("LoggingConfig") or {}
        return PASSED if present(logging.get("LogGroup")) else FAILED


check_bucket_kms = BucketKmsEncrypted()
check_bucket_public = BucketNotPublic()
check_bucket_policy = BucketPolicyTlsOnlyAndNoPublicGrant()
check_queue_dlq = QueueHasDeadLetterQueue()
check_database = DatabasePrivateAndEncrypted()
check_api_method = ApiMethodAuthorized()
check_api_body = ApiDefinitionAuthorized()
check_log_retention = LogGroupRetention()
check_function_log_group = FunctionLogsToOwnLogGroup()
