package policy

// Denial codes. The engine itself produces CodePolicyError, CodeInvalidInput and
// CodeUnexplained; the others come from the default bundle, one per rule (see
// docs/policy.md). Other bundles may use codes of their own.
const (
	// CodePolicyError: the policy could not be evaluated; the proposal is denied
	// rather than admitted.
	CodePolicyError = "POLICY_ERROR"
	// CodeInvalidInput: the input document is malformed.
	CodeInvalidInput = "INVALID_INPUT"
	// CodeUnexplained: the policy answered allow=false without any denial; the
	// engine adds this one so that every denied proposal carries a reason.
	CodeUnexplained = "UNEXPLAINED_DENY"

	CodeUnknownMode     = "UNKNOWN_MODE"
	CodeModeClosed      = "MODE_CLOSED"
	CodeTeamCount       = "TEAM_COUNT"
	CodeTeamSize        = "TEAM_SIZE"
	CodeMMRSpread       = "MMR_SPREAD"
	CodeTeamMMRGap      = "TEAM_MMR_GAP"
	CodeRegion          = "REGION"
	CodeLatency         = "LATENCY"
	CodePartySplit      = "PARTY_SPLIT"
	CodeBlocklisted     = "BLOCKLISTED"
	CodeShardShare      = "SHARD_SHARE"
	CodeDuplicatePlayer = "DUPLICATE_PLAYER"
)
