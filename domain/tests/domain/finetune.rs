//! Fine-tune exports recorded on the tenant: each starts where the last one ended.

use casebook_domain::actor::{Actor, Role};
use casebook_domain::error::{AccessError, DomainError, ErrorKind};
use casebook_domain::finetune::{FinetuneExport, LastExport, LogPosition};
use casebook_domain::tenant::{Tenant, TenantCommand, TenantError, TenantEvent};
use chrono::NaiveDate;
use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;

use crate::support::{actor, onboarded, OTHER_TENANT, TENANT};

fn tenant() -> TestFramework<Tenant> {
    TestFramework::with(())
}

fn system() -> Actor {
    Actor::system(TENANT)
}

fn at(transaction_id: i64, global_position: i64) -> LogPosition {
    LogPosition {
        transaction_id,
        global_position,
    }
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

fn export(
    on: u32,
    after: Option<LogPosition>,
    up_to: LogPosition,
    examples: u32,
) -> FinetuneExport {
    FinetuneExport {
        bucket: "artifacts".into(),
        key: format!("{TENANT}/finetune/{}.jsonl", day(on)),
        exported_on: day(on),
        examples,
        after,
        up_to,
    }
}

fn exported_once() -> Vec<TenantEvent> {
    let mut events = onboarded();
    events.push(TenantEvent::FinetuneExported {
        export: export(18, None, at(100, 40), 3),
    });
    events
}

#[test]
fn the_first_export_starts_at_the_beginning_of_the_log() {
    let first = export(18, None, at(100, 40), 3);
    tenant()
        .given(onboarded())
        .when(TenantCommand::RecordFinetuneExport {
            actor: system(),
            export: first.clone(),
        })
        .then_expect_events(vec![TenantEvent::FinetuneExported { export: first }]);
}

#[test]
fn the_next_export_starts_where_the_last_one_ended() {
    let next = export(25, Some(at(100, 40)), at(120, 55), 2);
    tenant()
        .given(exported_once())
        .when(TenantCommand::RecordFinetuneExport {
            actor: system(),
            export: next.clone(),
        })
        .then_expect_events(vec![TenantEvent::FinetuneExported { export: next }]);
}

#[test]
fn an_export_that_does_not_start_at_the_last_end_is_out_of_date() {
    // Computed from a state read before another run recorded its export.
    tenant()
        .given(exported_once())
        .when(TenantCommand::RecordFinetuneExport {
            actor: system(),
            export: export(25, None, at(120, 55), 5),
        })
        .then_expect_error(TenantError::ExportOutOfDate {
            after: None,
            last: Some(at(100, 40)),
        });
}

#[test]
fn a_second_export_on_the_same_day_is_refused_so_its_file_is_not_overwritten() {
    tenant()
        .given(exported_once())
        .when(TenantCommand::RecordFinetuneExport {
            actor: system(),
            export: export(18, Some(at(100, 40)), at(120, 55), 1),
        })
        .then_expect_error(TenantError::AlreadyExportedOn(day(18)));
}

#[test]
fn an_empty_or_backwards_export_is_invalid() {
    for empty in [
        export(25, Some(at(100, 40)), at(120, 55), 0),
        export(25, Some(at(100, 40)), at(100, 40), 1),
        export(25, Some(at(100, 40)), at(99, 70), 1),
    ] {
        tenant()
            .given(exported_once())
            .when(TenantCommand::RecordFinetuneExport {
                actor: system(),
                export: empty,
            })
            .then_expect_error(TenantError::EmptyExport);
    }
    assert_eq!(TenantError::EmptyExport.kind(), ErrorKind::Invalid);
}

#[test]
fn only_the_system_records_exports_and_only_for_its_tenant() {
    tenant()
        .given(onboarded())
        .when(TenantCommand::RecordFinetuneExport {
            actor: actor(Role::Admin, TENANT),
            export: export(18, None, at(100, 40), 3),
        })
        .then_expect_error(TenantError::Access(AccessError::Forbidden {
            role: Role::Admin,
        }));
    tenant()
        .given(onboarded())
        .when(TenantCommand::RecordFinetuneExport {
            actor: Actor::system(OTHER_TENANT),
            export: export(18, None, at(100, 40), 3),
        })
        .then_expect_error(TenantError::Access(AccessError::NotFound));
}

#[test]
fn the_tenant_remembers_where_its_last_export_ended() {
    let mut state = Tenant::default();
    exported_once().into_iter().for_each(|e| state.apply(e));
    assert_eq!(
        state.last_finetune_export(),
        Some(&LastExport {
            up_to: at(100, 40),
            exported_on: day(18),
        })
    );
    state.apply(TenantEvent::FinetuneExported {
        export: export(25, Some(at(100, 40)), at(120, 55), 2),
    });
    assert_eq!(state.last_finetune_export().unwrap().up_to, at(120, 55));
}

#[test]
fn the_event_is_versioned_and_round_trips() {
    let event = TenantEvent::FinetuneExported {
        export: export(18, None, at(100, 40), 3),
    };
    use cqrs_es::DomainEvent;
    assert_eq!(event.event_type(), "FinetuneExported");
    assert_eq!(event.event_version(), "1");
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["type"], "FinetuneExported");
    assert_eq!(json["export"]["exported_on"], "2026-11-18");
    assert_eq!(json["export"]["up_to"]["transaction_id"], 100);
    let any = casebook_domain::any_event::AnyEvent::decode("Tenant", "FinetuneExported", "1", json)
        .unwrap();
    assert_eq!(any, casebook_domain::any_event::AnyEvent::Tenant(event));
}
