# systemd: run by `cmake --install` (install(CODE) in CMakeLists.txt includes it), never at
# configure time. `cmake --install BUILD --prefix P` replaces CMAKE_INSTALL_PREFIX only now, so the
# paths written into the units, and where the example configuration goes, are worked out here from
# the prefix being installed to; configured at configure time they would name the prefix of
# `cmake -S . -B BUILD` (/usr/local by default), and the installed service could not start.
# Set by the caller: HY_SYSTEMD_SRC (systemd/ in the source tree), HY_SBINDIR and HY_SYSCONFDIR
# (GNUInstallDirs' values: relative, or absolute when the user set them so), HY_UNITDIR.

# A directory as installed to, by GNUInstallDirs' rules applied to this prefix: sysconfdir is
# /etc for the prefixes / and /usr, /etc/opt/NAME for /opt/NAME, PREFIX/etc otherwise; every
# other directory is PREFIX/DIR, as install(TARGETS ... DESTINATION DIR) puts it.
function(hy_install_dir out dir kind)
  if(IS_ABSOLUTE "${dir}")
    set(full "${dir}")
  elseif(kind STREQUAL "sysconf" AND CMAKE_INSTALL_PREFIX MATCHES "^/(usr/*)?$")
    set(full "/${dir}")
  elseif(kind STREQUAL "sysconf" AND CMAKE_INSTALL_PREFIX MATCHES "^/opt/")
    set(full "/${dir}/${CMAKE_INSTALL_PREFIX}")
  else()
    set(full "${CMAKE_INSTALL_PREFIX}/${dir}")
  endif()
  string(REGEX REPLACE "/+" "/" full "${full}")
  string(REGEX REPLACE "(.)/$" "\\1" full "${full}")
  set(${out} "${full}" PARENT_SCOPE)
endfunction()

hy_install_dir(HY_FULL_SBINDIR "${HY_SBINDIR}" bin)
hy_install_dir(HY_FULL_SYSCONFDIR "${HY_SYSCONFDIR}" sysconf)
hy_install_dir(_hy_unitdir "${HY_UNITDIR}" unit)

# Configured in memory and written straight to their place: a file staged in the build tree by
# `sudo cmake --install` would be root's, and stop the next install as the user (to a DESTDIR).
foreach(_hy_unit hybridd.service hybridd.socket)
  file(READ "${HY_SYSTEMD_SRC}/${_hy_unit}.in" _hy_text)
  string(CONFIGURE "${_hy_text}" _hy_text @ONLY)
  set(_hy_to "$ENV{DESTDIR}${_hy_unitdir}/${_hy_unit}")
  message(STATUS "Installing: ${_hy_to}")
  file(WRITE "${_hy_to}" "${_hy_text}")
  file(CHMOD "${_hy_to}" PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  # What file(INSTALL) does for the files it installs: `xargs rm < install_manifest.txt` finds them.
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${_hy_unitdir}/${_hy_unit}")
endforeach()
# systemd 252's search path for system units (systemd-analyze unit-paths, less /run and the
# generators'): units installed anywhere else are never found.
if(NOT _hy_unitdir MATCHES "^(/etc|/usr/local/lib|/usr/lib|/lib)/systemd/system$")
  message(WARNING "hybridd: systemd does not read units from ${_hy_unitdir}: link or copy "
          "hybridd.service and hybridd.socket into /etc/systemd/system, or install with "
          "--prefix /usr or /usr/local")
endif()

# The example configuration, at the path ExecStart= names. A configuration already there (an
# administrator's, from an earlier install) is kept, and the example goes beside it as
# hybridd.conf.new, as a package manager treats a changed conffile.
set(_hy_conf "${HY_FULL_SYSCONFDIR}/hybridd/hybridd.conf")
set(_hy_example "${HY_SYSTEMD_SRC}/hybridd.conf")
set(_hy_have "$ENV{DESTDIR}${_hy_conf}")
if(EXISTS "${_hy_have}")
  file(SHA256 "${_hy_have}" _hy_have_sum)
  file(SHA256 "${_hy_example}" _hy_example_sum)
endif()
if(NOT EXISTS "${_hy_have}" OR _hy_have_sum STREQUAL _hy_example_sum)
  file(INSTALL DESTINATION "${HY_FULL_SYSCONFDIR}/hybridd" TYPE FILE FILES "${_hy_example}")
else()
  message(STATUS "Keeping: ${_hy_have} (it differs from the example, which is installed as "
          "hybridd.conf.new)")
  file(INSTALL DESTINATION "${HY_FULL_SYSCONFDIR}/hybridd" TYPE FILE FILES "${_hy_example}"
       RENAME hybridd.conf.new)
endif()
