#!/usr/bin/env bash
# Point Telegram at the deployed webhook function and set the bot's profile (command
# menu, description and short description, in every language of shared/texts.py), show
# what Telegram knows about the webhook, or remove it. The bot token and the webhook secret are read from Secret Manager and
# handed to curl on standard input, so they never appear on a command line or in output.
# Usage: [DRY_RUN=1] [DROP_PENDING_UPDATES=1] infra/webhook.sh set|info|delete
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

action=${1:-}
case $action in
    set | info | delete) ;;
    *) die "usage: infra/webhook.sh set|info|delete" ;;
esac
DROP_PENDING_UPDATES=${DROP_PENDING_UPDATES:-0}

token=$(capture TOKEN gcloud secrets versions access latest --secret="$TOKEN_SECRET" \
    --project="$PROJECT")
[[ -n $token ]] || die "secret $TOKEN_SECRET is empty"

# telegram METHOD SECRET_TOKEN [CURL_ARGS...]: call a Bot API method, print its answer.
telegram() {
    local method=$1 secret_token=$2
    shift 2
    local config shown response
    config="url = \"$TELEGRAM_API_URL/bot$token/$method\""
    shown="url = \"$TELEGRAM_API_URL/bot<TOKEN>/$method\""
    if [[ -n $secret_token ]]; then
        config+=$'\n'"data-urlencode = \"secret_token=$secret_token\""
        shown+="; data-urlencode = \"secret_token=<WEBHOOK_SECRET>\""
    fi
    response=$(run_stdin "$shown" "$config" \
        curl --silent --show-error --max-time 30 --config - "$@")
    is_dry_run && return 0
    if command -v "$PYTHON" >/dev/null; then
        printf '%s' "$response" | "$PYTHON" -m json.tool || printf '%s\n' "$response"
    else
        printf '%s\n' "$response"
    fi
    [[ $response == *'"ok":true'* ]] || die "Telegram refused $method"
}

drop=()
[[ $DROP_PENDING_UPDATES == 1 ]] && drop=(--data-urlencode drop_pending_updates=true)

case $action in
    set)
        url=$(capture "https://$WEBHOOK_FUNCTION-dry-run.a.run.app" \
            gcloud functions describe "$WEBHOOK_FUNCTION" --project="$PROJECT" \
            --region="$REGION" --gen2 --format='value(serviceConfig.uri)')
        [[ -n $url ]] || die "$WEBHOOK_FUNCTION is not deployed (run infra/deploy.sh)"
        secret=$(capture WEBHOOK_SECRET gcloud secrets versions access latest \
            --secret="$WEBHOOK_SECRET_NAME" --project="$PROJECT")
        log "setting the webhook to $url"
        telegram setWebhook "$secret" --data-urlencode "url=$url" \
            --data-urlencode "allowed_updates=$ALLOWED_UPDATES" \
            --data-urlencode "max_connections=$MAX_CONNECTIONS" "${drop[@]}"
        # The profile's texts are not secret: they travel as a JSON body on the command line.
        profile=$(cd "$REPO_ROOT" && "$PYTHON" -m functions.bot_profile)
        log "setting the bot's commands and descriptions"
        while IFS=$'\t' read -r method body; do
            telegram "$method" "" --header "Content-Type: application/json" --data "$body"
        done <<<"$profile"
        ;;
    info)
        telegram getWebhookInfo ""
        ;;
    delete)
        telegram deleteWebhook "" "${drop[@]}"
        ;;
esac
