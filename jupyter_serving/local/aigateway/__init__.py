"""The AI Gateway of serving endpoints, enforced: rate limits (calls, tokens), provisioned throughput,
guardrails, usage tracking and inference tables. The gateway calls `AiGatewayPolicy` (see `policy`)."""
from jupyter_serving.local.aigateway.errors import AiGatewayError
from jupyter_serving.local.aigateway.policy import Admission, AiGatewayPolicy

__all__ = ["Admission", "AiGatewayError", "AiGatewayPolicy"]
