#!/bin/sh
# nvr_format.sh ITEM TYPE [ARCH]: check an item's format and print TAP13.
#
# The item comes from a bus message, so it is data, never code: it is only
# ever expanded in double quotes, and it is printed back only when it is
# made of harmless characters. Otherwise the result leaves "item" out and
# the runner fills it in from its own copy.
set -u

item=${1-}
type=${2-}
arch=${3-noarch}

safe=yes
case $item in
    '' | *[!A-Za-z0-9._+~^-]*) safe=no ;;
esac

nvr_re='^[A-Za-z0-9_+][A-Za-z0-9._+-]*-[A-Za-z0-9._+~^]+-[A-Za-z0-9._+~^]+$'
update_re='^FEDORA(-EPEL|-EPEL-NEXT|-FLATPAK|-CONTAINER|-MODULAR)?-[0-9]{4}-[0-9a-f]{6,}$'

outcome=FAILED
case $type in
    koji_build)
        what="Koji build"
        if [ "$safe" = no ]; then
            note="not a name-version-release: characters other than letters, digits and ._+~^- in it"
        elif printf '%s\n' "$item" | grep -Eq "$nvr_re"; then
            outcome=PASSED
            note="well-formed name-version-release"
        else
            note="not a name-version-release (want NAME-VERSION-RELEASE, no dash in version or release)"
        fi
        ;;
    bodhi_update)
        what="Bodhi update"
        if [ "$safe" = yes ] && printf '%s\n' "$item" | grep -Eq "$update_re"; then
            outcome=PASSED
            note="well-formed update id"
        else
            note="not an update id like FEDORA-2024-0123abcdef"
        fi
        ;;
    *)
        echo "nvr_format.sh: item type must be koji_build or bodhi_update" >&2
        exit 2
        ;;
esac

case $arch in
    '' | *[!a-z0-9_]*) arch="" ;;
esac

ok="ok"
[ "$outcome" = PASSED ] || ok="not ok"

echo "TAP version 13"
echo "1..1"
if [ "$safe" = yes ]; then
    echo "$ok 1 - nvr-format for $what $item"
else
    echo "$ok 1 - nvr-format for $what"
fi
echo "  ---"
[ "$safe" = yes ] && echo "  item: '$item'"
echo "  type: $type"
echo "  outcome: $outcome"
echo "  note: \"$note\""
[ -n "$arch" ] && echo "  arch: $arch"
echo "  ..."
exit 0
