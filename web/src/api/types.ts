// The API's shapes, as handlers/src/http/*.rs serialize them (see /v1/openapi.json).

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface EventPosition {
  aggregate_type: string;
  aggregate_id: string;
  event_type: string;
  sequence: number;
  global_position: number;
}

export interface CommandAccepted {
  ids: Record<string, string>;
  events: EventPosition[];
}

export interface Plan {
  plan: string;
  requests_per_second: number;
  burst: number;
}

export interface SessionView {
  session_id: string;
  subject: string;
  attachments: string[];
  status: 'open' | 'closed';
  opened_by: string;
  opened_at: string;
  closed_by: string | null;
  closed_at: string | null;
  query_count: number;
  last_activity_at: string;
  version: number;
}

export interface QueryView {
  query_id: string;
  diagnosis_id: string;
  text: string;
  submitted_by: string;
  submitted_at: string;
}

export interface SessionDetail extends SessionView {
  queries: QueryView[];
}

export type Severity = 'info' | 'low' | 'medium' | 'high';

export interface Finding {
  summary: string;
  detail: string | null;
  severity: Severity;
}

export interface PrecedentSource {
  judgment_id: string;
  score: number;
  source_position: number;
}

export interface AttachmentRead {
  key: string;
  content_type: string | null;
  outcome: { status: 'included'; bytes: number; truncated: boolean } | { status: 'skipped'; reason: string };
}

export interface Provenance {
  model_id: string;
  model_tier: string;
  prompt_template_id: string;
  prompt_template_hash: string;
  retrieved_judgment_ids: string[];
  input_tokens: number;
  output_tokens: number;
  cost_usd_micros: number;
  stop_reason?: string | null;
  embedding?: { model_id: string; dimension: number } | null;
  precedents?: PrecedentSource[] | null;
  attachments?: AttachmentRead[] | null;
}

export interface ProposalView {
  text: string;
  findings: Finding[];
  confidence: number;
  proposed_at: string;
  provenance: Provenance;
}

export type Outcome = 'approved' | 'amended' | 'rejected' | 'auto_approved';

export interface DecisionSummary {
  outcome: Outcome;
  decided_by: string;
  decided_at: string;
}

export type StaffStatus = 'requested' | 'context_retrieved' | 'proposed' | 'deferred_budget' | 'failed' | 'resolved';

interface Question {
  diagnosis_id: string;
  session_id: string;
  query_id: string;
  query: string;
  requested_at: string;
}

/** A diagnosis as consultants and auditors read it. */
export interface StaffDiagnosis extends Question {
  requested_by: string;
  status: StaffStatus;
  retryable?: boolean;
  outcome?: Outcome;
  attempt: number;
  failure_reason: string | null;
  /** While `deferred_budget`: the day (UTC) the practice's token budget renews. */
  budget_renews_on: string | null;
  proposal: ProposalView | null;
  decision: DecisionSummary | null;
  resolved_at: string | null;
  updated_at: string;
  version: number;
}

export type ReleaseStatus = 'in_review' | 'answered' | 'declined' | 'failed' | 'deferred_budget';

/** A diagnosis as the customer who asked reads it. */
export interface CustomerDiagnosis extends Question {
  status: ReleaseStatus;
  answer: { text: string; findings: Finding[]; amended: boolean } | null;
  declined_reason: string | null;
  decided_at: string | null;
  /** While `deferred_budget`: the day (UTC) the practice's token budget renews. */
  budget_renews_on: string | null;
}

export interface QueueEntry extends StaffDiagnosis {
  age_seconds: number;
}

export type Verdict =
  | { kind: 'Approved' }
  | { kind: 'Amended'; text: string; reason: string | null }
  | { kind: 'Rejected'; reason: string }
  | { kind: 'AutoApproved'; threshold: number; confidence: number };

export interface DecisionView {
  decision_id: string;
  diagnosis_id: string;
  verdict: Verdict;
  decided_by: string;
  decided_by_role: string;
  decided_at: string;
}

export interface UploadTicket {
  key: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  expires_at: string;
}

export interface TenantView {
  tenant_id: string;
  name: string;
  status: 'active' | 'suspended' | 'erased';
  plan: string;
  model_policy: string;
  auto_resolve_threshold: number | null;
  suspended_reason: string | null;
  onboarded_at: string;
  version: number;
}

export interface UsageDay {
  day: string;
  model_id: string;
  proposals: number;
  input_tokens: number;
  output_tokens: number;
  cost_usd_micros: number;
}

export interface UsageReport {
  from: string;
  to: string;
  days: UsageDay[];
  total_proposals: number;
  total_cost_usd_micros: number;
  /** This month's token budget; null until the practice's plan is known. */
  budget: TokenBudget | null;
}

/** The practice's model-token budget for the current calendar month (UTC). */
export interface TokenBudget {
  plan: string;
  /** `YYYY-MM`. */
  month: string;
  tokens_budget: number;
  tokens_used: number;
  tokens_remaining: number;
  /** `YYYY-MM-DD`: the first day of the next month. */
  renews_on: string;
}

export type UserStatus = 'pending' | 'active' | 'disabled';

export interface UserView {
  email: string;
  name: string;
  role: string;
  status: UserStatus;
  invited_at: string;
  updated_at: string;
}

export interface AuditRow {
  tenant_id: string;
  seq: number;
  global_position: number;
  recorded_at: string;
  actor_id: string;
  actor_role: string;
  source: string;
  action: string;
  aggregate_type: string;
  aggregate_id: string;
  event_sequence: number;
  session_id: string | null;
  query_id: string | null;
  diagnosis_id: string | null;
  decision_id: string | null;
  judgment_id: string | null;
  outcome: string | null;
  reason: string | null;
  threshold: number | null;
  confidence: number | null;
  model_id: string | null;
  model_tier: string | null;
  prompt_template_id: string | null;
  prompt_template_hash: string | null;
  retrieved_judgment_ids: string[] | null;
  input_tokens: number | null;
  output_tokens: number | null;
  cost_usd_micros: number | null;
  request_id: string;
  correlation_id: string;
  causation_id: string;
  event_digest?: string | null;
  encoding?: unknown;
  prev_hash: string;
  hash: string;
}

export interface EventLine {
  cursor: string;
  global_position: number;
  aggregate_type: string;
  aggregate_id: string;
  sequence: number;
  event_type: string;
  event_version: string;
  recorded_at: string;
  payload: unknown;
  metadata: unknown;
}

/** `active` (as captured), `revised` (content revised, still retrieved), `retired` (no longer retrieved). */
export type JudgmentStatus = 'active' | 'revised' | 'retired';

/** `decision`: captured from an approved or amended decision; `authored`: written by a consultant. */
export type JudgmentOrigin = 'decision' | 'authored';

/** A judgment of the practice (`GET /v1/judgments`), newest change first. */
export interface JudgmentView {
  judgment_id: string;
  status: JudgmentStatus;
  origin: JudgmentOrigin;
  /** The decision it was captured from (origin `decision`). */
  decision_id: string | null;
  /** The diagnosis that decision decided: its review is at `/review/{diagnosis_id}`. */
  diagnosis_id: string | null;
  title: string;
  body: string;
  tags: string[];
  /** How many times its content was revised. */
  revisions: number;
  retired_reason: string | null;
  /** `system` for a capture from a decision, or the authoring consultant's user id. */
  captured_by: string;
  captured_at: string;
  updated_at: string;
  /** Search results only (`?q=`): cosine similarity to the search text, 0..1. */
  score?: number;
}

/** One version of a judgment: its capture, a revision of its content, or its retirement. */
export interface JudgmentRevision {
  /** 1 for the capture, then one per change. */
  revision: number;
  kind: 'captured' | 'revised' | 'retired';
  /** The content it set (captures and revisions); null for a retirement. */
  title: string | null;
  body: string | null;
  tags: string[] | null;
  /** Why (retirements). */
  reason: string | null;
  acted_by: string;
  recorded_at: string;
}

/** A judgment with its history, oldest version first (`GET /v1/judgments/{id}`). */
export interface JudgmentDetail extends JudgmentView {
  history: JudgmentRevision[];
}

/** The server's check of the tenant's whole audit chain (`GET /v1/audit/verification`). */
export interface ChainVerification {
  verified: boolean;
  rows: number;
  content_checked: number;
  broken: { seq: number; global_position: number; problem: string } | null;
}
