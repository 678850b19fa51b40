//! A billing batch's request id (docs/API.md: every write takes `X-Request-Id`): the batch's
//! answer is kept in a receipt appended under the request's idempotency key, so a retry
//! reads that answer back and another batch under the same id is refused before any of
//! its lines is stored.

use ledger_domain::billing::{self, BatchLine, Billing, BillingCommand, BillingEvent, BillingState, KeepReceipt};
use ledger_domain::Decider;
use ledger_store::{AppendRequest, ExpectedVersion, StoreError};

use crate::executor::to_new_event;
use crate::{AppError, CommandContext, Ledger, Outcome};

/// The answer a billing batch was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReceipt {
    pub lines: Vec<BatchLine>,
    pub position: u64,
}

impl Ledger {
    /// The receipt of the batch first sent under `ctx`'s request id, when there is one. A
    /// request id already used for another request is `IDEMPOTENCY_CONFLICT`.
    pub async fn billing_receipt(&self, ctx: &CommandContext) -> Result<Option<BatchReceipt>, AppError> {
        let Some(Outcome::Replayed { appended }) = self.exec.replay::<BillingEvent>(ctx).await? else {
            return Ok(None);
        };
        let event = self.exec.store().read_all(appended.first_position, 1).await?.into_iter().next();
        // The same key and fingerprint name another kind of append only if the request was
        // not a billing batch: then it is another request under the same id.
        let Some(event) = event.filter(|e| e.stream == billing::STREAM) else {
            let key = ctx.idempotency.as_ref().map(|k| k.key.clone()).unwrap_or_default();
            return Err(AppError::Store(StoreError::IdempotencyConflict { key }));
        };
        let decoded = ledger_domain::decode::<BillingEvent>(&event.event_type, event.schema_version, &event.data)
            .map_err(|e| AppError::Decode { position: event.position, reason: e.to_string() })?;
        let BillingEvent::BillingBatchReceived { lines, position, .. } = decoded;
        Ok(Some(BatchReceipt { lines, position }))
    }

    /// Keeps the answer of a batch sent with a request id; without one there is nothing to
    /// keep (each line is still idempotent by its record id). When a twin of the batch
    /// raced this one and kept its receipt first, that receipt is the answer.
    pub async fn keep_billing_receipt(
        &self,
        ctx: &CommandContext,
        receipt: BatchReceipt,
    ) -> Result<BatchReceipt, AppError> {
        let (Some(_), Some(request_id)) = (&ctx.idempotency, &ctx.meta.request_id) else { return Ok(receipt) };
        let keep =
            KeepReceipt { request_id: request_id.clone(), lines: receipt.lines.clone(), position: receipt.position };
        let event = Billing::decide(&BillingState, BillingCommand::KeepReceipt(keep), ctx.now)?
            .pop()
            .expect("a kept receipt is one event");
        let req = AppendRequest {
            stream: billing::STREAM.to_string(),
            expected: ExpectedVersion::Any,
            events: vec![to_new_event(&event, ctx.now)],
            meta: ctx.meta.clone(),
            idempotency: ctx.idempotency.clone(),
            event_keys: vec![],
        };
        let appended = self.exec.store().append(req).await?;
        if appended.replayed {
            return self.billing_receipt(ctx).await?.ok_or_else(|| {
                AppError::Store(StoreError::Backend("a replayed billing receipt cannot be read back".into()))
            });
        }
        Ok(receipt)
    }
}
