# shellcheck shell=sh
# compose.sh ACTION FILE PROJECT [SERVICE...]
#
#   up:     create or recreate the SERVICEs (all when none are named) and
#           remove orphaned containers
#   down:   stop and remove the project's containers (a slot's project)
#   status: print "service<TAB>state<TAB>health" per container
#
# with compose file FILE (compose's default when empty) and project PROJECT.
# The v2 plugin (docker compose) is preferred when it answers, else the v1
# docker-compose.
action=$1 file=$2 project=$3
shift 3
if docker compose version >/dev/null 2>&1; then
  compose() { docker compose "$@"; }
elif command -v docker-compose >/dev/null 2>&1; then
  compose() { docker-compose "$@"; }
else
  echo "neither docker compose nor docker-compose found on the server" >&2
  exit 127
fi

# project_compose runs compose on this project.
project_compose() {
  if [ -n "$file" ]; then
    compose -f "$file" -p "$project" "$@"
  else
    compose -p "$project" "$@"
  fi
}

case $action in
up)
  project_compose up -d --remove-orphans "$@"
  ;;
down)
  project_compose down --remove-orphans
  ;;
status)
  # docker inspect, which v1 and v2 share, rather than compose ps, whose
  # output they do not.
  project_compose ps -a -q | xargs -r docker inspect --format \
    '{{index .Config.Labels "com.docker.compose.service"}}	{{.State.Status}}	{{if .State.Health}}{{.State.Health.Status}}{{end}}'
  ;;
*)
  echo "compose.sh: unknown action $action" >&2
  exit 2
  ;;
esac
