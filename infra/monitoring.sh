#!/usr/bin/env bash
# Alerts, a dashboard and a budget for the deployed bot, created or brought up to date
# (re-runnable; infra/setup.sh runs it). What it creates:
# - log-based metrics from the functions' structured logs (infra/monitoring/metrics/,
#   one file per metric, named after it);
# - an e-mail notification channel to ALERT_EMAIL (infra/config.sh);
# - alert policies (infra/monitoring/policies/): dead letters, worker errors, webhook 5xx,
#   photos arriving while no answers go out;
# - the dashboard (infra/monitoring/dashboard.json);
# - a billing budget of BUDGET_AMOUNT with alerts at BUDGET_THRESHOLDS.
# Policies, dashboard and budget are found again by their display names.
# Usage: [DRY_RUN=1] [ALERT_EMAIL=ops@example.com] infra/monitoring.sh
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MONITORING_DIR=$INFRA_DIR/monitoring
DASHBOARD_NAME="Look-alike bot"
BUDGET_NAME="lookalike-$PROJECT"

# render FILE CHANNELS_JSON: FILE with its @NAME@ placeholders filled from the
# configuration, on one line (commands print one per line).
render() {
    local text name
    text=$(sed 's/^ *//' "$1" | tr -d '\n')
    text=${text//@CHANNELS@/$2}
    for name in WEBHOOK_FUNCTION WORKER_FUNCTION DEAD_LETTER_SUBSCRIPTION \
            MAX_DELIVERY_ATTEMPTS WORKER_ERROR_SHARE WEBHOOK_5XX_THRESHOLD; do
        text=${text//@$name@/${!name}}
    done
    [[ $text != *@[A-Z]*@* ]] || die "$1 has a placeholder monitoring.sh does not fill"
    printf '%s\n' "$text"
}

display_name() {
    grep -o -m1 '"displayName": *"[^"]*"' "$1" | sed 's/.*: *"\(.*\)"/\1/'
}

log "log-based metrics"
for file in "$MONITORING_DIR"/metrics/*.json; do
    metric=$(basename "$file" .json)
    if exists gcloud logging metrics describe "$metric" --project="$PROJECT"; then
        run gcloud logging metrics update "$metric" --project="$PROJECT" \
            --config-from-file="$file"
    else
        run gcloud logging metrics create "$metric" --project="$PROJECT" \
            --config-from-file="$file"
    fi
done

log "notification channel"
channels='[]'
channel=
if [[ -z $ALERT_EMAIL ]]; then
    warn "ALERT_EMAIL is empty: the alert policies notify no one (set it in infra/config.sh)"
else
    channel=$(capture "" gcloud beta monitoring channels list --project="$PROJECT" \
        --filter="type=\"email\" AND labels.email_address=\"$ALERT_EMAIL\"" \
        --format='value(name)' | head -n1)
    if [[ -z $channel ]]; then
        channel=$(capture "projects/$PROJECT/notificationChannels/0" \
            gcloud beta monitoring channels create --project="$PROJECT" \
            --display-name="Look-alike bot: $ALERT_EMAIL" --type=email \
            --channel-labels="email_address=$ALERT_EMAIL" --format='value(name)')
    fi
    channels="[\"$channel\"]"
fi

log "alert policies"
for file in "$MONITORING_DIR"/policies/*.json; do
    title=$(display_name "$file")
    policy=$(render "$file" "$channels")
    existing=$(capture "" gcloud alpha monitoring policies list --project="$PROJECT" \
        --filter="displayName=\"$title\"" --format='value(name)' | head -n1)
    if [[ -n $existing ]]; then
        run gcloud alpha monitoring policies update "$existing" --project="$PROJECT" \
            --policy="$policy"
    else
        run gcloud alpha monitoring policies create --project="$PROJECT" --policy="$policy"
    fi
done

log "dashboard"
dashboard=$(render "$MONITORING_DIR/dashboard.json" "$channels")
existing=$(capture "" gcloud monitoring dashboards list --project="$PROJECT" \
    --filter="displayName=\"$DASHBOARD_NAME\"" --format='value(name)' | head -n1)
if [[ -n $existing ]]; then
    run gcloud monitoring dashboards update "$existing" --project="$PROJECT" \
        --config="$dashboard"
else
    run gcloud monitoring dashboards create --project="$PROJECT" --config="$dashboard"
fi

log "billing budget"
# The budget lives on the project's billing account; setting it needs a role there
# (Billing Account Costs Manager), which a project owner may lack: then it is skipped.
if ! account=$(capture billingAccounts/000000-000000-000000 gcloud billing projects \
        describe "$PROJECT" --project="$PROJECT" --format='value(billingAccountName)') ||
        [[ -z $account ]]; then
    warn "no billing account readable for $PROJECT: no budget set"
    exit 0
fi
account=${account#billingAccounts/}
rules=()
for percent in $BUDGET_THRESHOLDS; do
    rules+=("--threshold-rule=percent=$percent")
done
notify=()
[[ -n $channel ]] && notify=("--notifications-rule-monitoring-notification-channels=$channel")
number=$(project_number)
if ! budget=$(capture "" gcloud billing budgets list --billing-account="$account" \
        --project="$PROJECT" --filter="displayName=\"$BUDGET_NAME\"" \
        --format='value(name)' | head -n1); then
    warn "cannot list the budgets of billing account $account: no budget set"
    exit 0
fi
if [[ -n $budget ]]; then
    run gcloud billing budgets update "$budget" --project="$PROJECT" \
        --budget-amount="$BUDGET_AMOUNT" --clear-threshold-rules \
        "${rules[@]/--threshold-rule=/--add-threshold-rule=}" "${notify[@]}"
else
    run gcloud billing budgets create --billing-account="$account" --project="$PROJECT" \
        --display-name="$BUDGET_NAME" --budget-amount="$BUDGET_AMOUNT" \
        --filter-projects="projects/$number" --calendar-period=month \
        "${rules[@]}" "${notify[@]}"
fi
log "done; the dashboard: https://console.cloud.google.com/monitoring/dashboards?project=$PROJECT"
