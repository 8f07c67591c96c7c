//! What a model call costs: a price table per model id, in US dollars per million tokens.
//!
//! A price per million tokens is also the price in millionths of a dollar per token, so a
//! call's cost in micro-dollars (what provenance records) is `tokens × price`, rounded.

use std::collections::HashMap;

use serde::Deserialize;

/// One model's on-demand prices.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct ModelPrice {
    /// US dollars per million input tokens.
    pub input: f64,
    /// US dollars per million output tokens.
    pub output: f64,
}

/// Prices by model id (or inference-profile id).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable {
    prices: HashMap<String, ModelPrice>,
}

impl PriceTable {
    /// A table of `prices`.
    pub fn new(prices: impl IntoIterator<Item = (String, ModelPrice)>) -> Self {
        Self {
            prices: prices.into_iter().collect(),
        }
    }

    /// The price of `model_id`, if the table has it.
    pub fn price(&self, model_id: &str) -> Option<ModelPrice> {
        self.prices.get(model_id).copied()
    }

    /// Adds or replaces prices (configuration overriding the defaults).
    pub fn extend(&mut self, prices: impl IntoIterator<Item = (String, ModelPrice)>) {
        self.prices.extend(prices);
    }

    /// What `input_tokens` in and `output_tokens` out cost on `model_id`, in millionths of a
    /// US dollar; `None` for a model the table doesn't price (configuration validates that
    /// every configured model has a price, so this means a model outside the configuration).
    pub fn cost_usd_micros(
        &self,
        model_id: &str,
        input_tokens: u32,
        output_tokens: u32,
    ) -> Option<u64> {
        let price = self.price(model_id)?;
        let micros =
            f64::from(input_tokens) * price.input + f64::from(output_tokens) * price.output;
        // Non-negative (validated prices) and far below u64::MAX for any u32 token counts.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(micros.round() as u64)
    }
}

impl casebook_application::ports::Pricing for PriceTable {
    fn cost_usd_micros(
        &self,
        model_id: &str,
        input_tokens: u32,
        output_tokens: u32,
    ) -> Option<u64> {
        PriceTable::cost_usd_micros(self, model_id, input_tokens, output_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_tokens_times_the_price_per_million_in_micro_dollars() {
        let table = PriceTable::new([(
            "haiku".to_owned(),
            ModelPrice {
                input: 0.8,
                output: 4.0,
            },
        )]);
        // 1,000 × 0.8 + 500 × 4 = 2,800 micro-dollars = $0.0028.
        assert_eq!(table.cost_usd_micros("haiku", 1_000, 500), Some(2_800));
        assert_eq!(table.cost_usd_micros("unknown", 1, 1), None);
    }
}
