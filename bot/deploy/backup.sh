#!/usr/bin/env bash
# A consistent PostgreSQL backup of Kezek (pg_dump's custom format: one snapshot, restorable table
# by table), checked readable, kept for BACKUP_KEEP_DAYS days. bot/deploy/README.md, "Backups".
#
#   KEZEK_DATABASE_URL=postgresql://kezek:...@host/kezek  bot/deploy/backup.sh [DIR]
#
# DIR: BACKUP_DIR or /var/lib/kezek-backups. The URL is libpq's (pg_dump's), so asyncpg-only query
# options (e.g. ?ssl=require) must be written the libpq way (?sslmode=require) for this script.
# Exit status: 0 done; 1 pg_dump or the check failed (nothing replaces an older good dump); 2 usage.
set -euo pipefail
umask 077

url="${KEZEK_DATABASE_URL:-}"
case "$url" in
    postgresql://*|postgres://*) ;;
    *) echo "backup.sh: KEZEK_DATABASE_URL must be a postgresql:// URL" >&2; exit 2 ;;
esac
dir="${1:-${BACKUP_DIR:-/var/lib/kezek-backups}}"
keep_days="${BACKUP_KEEP_DAYS:-14}"
case "$keep_days" in ''|*[!0-9]*) echo "backup.sh: BACKUP_KEEP_DAYS must be a number" >&2; exit 2 ;; esac

mkdir -p "$dir"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
final="$dir/kezek-$stamp.dump"
partial="$final.partial"
trap 'rm -f "$partial"' EXIT

pg_dump --dbname="$url" --format=custom --compress=6 --no-owner --no-privileges --file="$partial"
# A dump that pg_restore cannot list is no backup.
pg_restore --list "$partial" >/dev/null
mv "$partial" "$final"
trap - EXIT
echo "backup.sh: wrote $final ($(du -h "$final" | cut -f1))"

# Older dumps go only after this one is safely written.
find "$dir" -maxdepth 1 -name 'kezek-*.dump' -type f -mtime "+$keep_days" -print -delete
