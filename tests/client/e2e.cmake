# hybridctl end to end (label "e2e"): the real hybridctl against a real hybridd on a temporary
# socket, in Python 3's standard library only (test_hybridctl.py). PoCL's kernel cache comes from
# POCL_CACHE_DIR in the environment (`make test` exports one), else the build tree's.
if(TARGET hybridctl AND TARGET hybridd)
  find_program(HY_PYTHON3 python3)
  if(HY_PYTHON3)
    add_test(NAME hybridctl_e2e
             COMMAND ${HY_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/test_hybridctl.py
                     --hybridd $<TARGET_FILE:hybridd> --hybridctl $<TARGET_FILE:hybridctl>
                     --pocl-cache ${CMAKE_BINARY_DIR}/pocl-cache)
    set_tests_properties(hybridctl_e2e PROPERTIES LABELS e2e TIMEOUT ${HY_E2E_TIMEOUT})
  else()
    message(STATUS "python3 not found: the hybridctl_e2e test is not registered")
  endif()
endif()
