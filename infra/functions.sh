# The five Lambda functions and the casebook-handlers features each is built with: only what
# its work needs (sourced by infra/lambda-build.sh, which builds them, and by
# infra/local/check-deps.sh, which checks what each one links).
#   authorizer, scheduler        no model provider, no Cognito administration
#   api                          Bedrock (embeddings for consultants' judgment search)
#   worker                       Bedrock (embeddings for the search, Converse for the diagnosis)
#   projector                    Bedrock (the judgment index's embeddings), Cognito (members'
#                                accounts) and Secrets Manager (the verifiable logs' signing key)
# shellcheck disable=SC2034  # read by the scripts that source this file
FUNCTIONS=(api authorizer worker scheduler projector)
declare -A FUNCTION_FEATURES=(
  [api]="bedrock"
  [authorizer]=""
  [scheduler]=""
  [worker]="bedrock"
  [projector]="bedrock,cognito,secrets"
)

# Calls `$1 <features> --bin <function> …` once per feature set: features unify within one
# cargo invocation, so functions built together would link what any of them needs.
each_feature_set() {
  local build=$1 function key
  # Bash refuses an empty key: "none" stands for no features.
  local -A bins_by_features=()
  for function in "${FUNCTIONS[@]}"; do
    bins_by_features[${FUNCTION_FEATURES[$function]:-none}]+=" --bin $function"
  done
  for key in "${!bins_by_features[@]}"; do
    # shellcheck disable=SC2086  # the --bin flags are words
    "$build" "${key#none}" ${bins_by_features[$key]}
  done
}

# AWS-LC (rustls' and the SDK's crypto) gathers CPU-jitter entropy the first time a process needs
# randomness — its first TLS handshake, to RDS Proxy or Cognito's JWKS — which costs 10–50 ms of
# a cold start. Built without it, AWS-LC seeds from the kernel (getrandom, which Lambda's
# microVMs feed from the host) and the CPU's generator where there is one. Read by aws-lc-sys'
# build script: it changes what the functions' builds compile, not the host's.
export AWS_LC_SYS_NO_JITTER_ENTROPY=1
