# Every example in examples/ is a test: it must run as written and succeed (see
# run_workflow_file.sh for the "-- test:" directives).
file(GLOB WORKFLOW_FILES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/examples/*.sloth)
foreach(file ${WORKFLOW_FILES})
  get_filename_component(name ${file} NAME_WE)
  get_filename_component(dir ${file} DIRECTORY)
  get_filename_component(group ${dir} NAME)
  add_test(NAME ${group}.${name}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/run_workflow_file.sh $<TARGET_FILE:sloth-runner> ${file})
endforeach()

# Each documentation page's `-- example:` blocks run as a test (run_doc_examples.py).
file(GLOB_RECURSE DOC_PAGES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/*.md)
foreach(page ${DOC_PAGES})
  file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR}/docs ${page})
  string(REGEX REPLACE "[/.]" "_" name ${rel})
  add_test(NAME docs.${name}
           COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/run_doc_examples.py $<TARGET_FILE:sloth-runner> ${page})
endforeach()
