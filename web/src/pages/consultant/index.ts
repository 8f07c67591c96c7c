// The consultant's area (one lazily loaded chunk).
export { ReviewQueue } from './ReviewQueue';
export { DiagnosisReview } from './DiagnosisReview';
export { Judgments } from './Judgments';
