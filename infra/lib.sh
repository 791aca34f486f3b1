# shellcheck shell=bash
# Helpers shared by the scripts in infra/. With DRY_RUN=1 every command that would talk
# to Google Cloud or Telegram is printed, shell-quoted, on its own line of standard
# output instead of being run; progress messages go to standard error.

INFRA_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$INFRA_DIR")
# shellcheck source=config.sh
source "$INFRA_DIR/config.sh"

DRY_RUN=${DRY_RUN:-0}
ASSUME_YES=${ASSUME_YES:-0}

# Commands are printed on fd 3 so that those run inside $(...) still reach the terminal.
exec 3>&1

is_dry_run() { [[ $DRY_RUN == 1 || $DRY_RUN == true || $DRY_RUN == yes ]]; }
log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Print a command as it could be pasted into a shell.
show() {
    local quoted
    printf -v quoted '%q ' "$@"
    printf '%s\n' "${quoted% }" >&3
}

run() {
    if is_dry_run; then show "$@"; else "$@"; fi
}

# run_stdin DESCRIPTION DATA COMMAND...: run COMMAND with DATA on standard input. Secrets
# travel this way, never on a command line; a dry run shows DESCRIPTION instead of DATA.
run_stdin() {
    local description=$1 data=$2
    shift 2
    if is_dry_run; then
        printf '# stdin: %s\n' "$description" >&3
        show "$@"
    else
        printf '%s' "$data" | "$@"
    fi
}

# Print the output of a command; a dry run prints PLACEHOLDER, which must still be a
# valid argument to the commands that use it.
capture() {
    local placeholder=$1
    shift
    if is_dry_run; then
        show "$@"
        printf '%s\n' "$placeholder"
    else
        "$@"
    fi
}

# Whether a resource exists (the command succeeds). A dry run assumes it does not, so
# that the commands creating it are printed as well.
exists() {
    if is_dry_run; then
        show "$@"
        return 1
    fi
    "$@" >/dev/null 2>&1
}

# Run a command whose failure should not stop the script (teardown of what may be gone).
attempt() {
    if is_dry_run; then
        show "$@"
    elif ! "$@"; then
        warn "failed, continuing: $*"
    fi
}

confirm() {
    local prompt=$1 answer
    [[ $ASSUME_YES == 1 ]] && return 0
    [[ -t 0 ]] || return 1
    read -r -p "$prompt [y/N] " answer
    [[ $answer == [yY] || $answer == [yY][eE][sS] ]]
}

sa_email() { printf '%s@%s.iam.gserviceaccount.com' "$1" "$PROJECT"; }

project_number() {
    capture PROJECT_NUMBER gcloud projects describe "$PROJECT" --project="$PROJECT" \
        --format='value(projectNumber)'
}

# -- derived settings, used by the scripts that source this file --------------------
# shellcheck disable=SC2034
{
    if [[ -z $PROJECT ]]; then
        if is_dry_run; then
            PROJECT=your-project-id
        else
            PROJECT=$(gcloud config get-value project 2>/dev/null || true)
            [[ -n $PROJECT ]] || die "set PROJECT or run: gcloud config set project PROJECT_ID"
        fi
    fi
    BUCKET=${BUCKET:-${PROJECT}-lookalike}
    INDEX_URI=gs://$BUCKET/$INDEX_PREFIX
    MODELS_URI=gs://$BUCKET/$MODELS_PREFIX
    MARKERS_URI=gs://$BUCKET/$MARKERS_PREFIX
    QUOTAS_URI=gs://$BUCKET/$QUOTAS_PREFIX
    if [[ -z $PYTHON ]]; then
        if [[ -x $REPO_ROOT/.venv/bin/python ]]; then
            PYTHON=$REPO_ROOT/.venv/bin/python
        else
            PYTHON=python3
        fi
    fi
    WEBHOOK_SA_EMAIL=$(sa_email "$WEBHOOK_SA")
    WORKER_SA_EMAIL=$(sa_email "$WORKER_SA")
    INVOKER_SA_EMAIL=$(sa_email "$INVOKER_SA")
    BUILD_SA_EMAIL=$(sa_email "$BUILD_SA")
}
