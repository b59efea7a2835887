# kiln_verilate(<target> PREFIX <Vname> TOP <module> SOURCES <sv files...> [ARGS <verilator args...>])
#
# Verilates at build time into one translation unit added to <target>. Unlike
# Verilator's own verilate(), configuring runs nothing, so the sources may be generated
# by the build (the package comes from kiln-hw-gen). Verilator's runtime and generated
# code are compiled without the project's warnings.
include_guard(DIRECTORY)
if(NOT VERILATOR_ROOT)
  find_package(verilator HINTS /usr/share/verilator $ENV{VERILATOR_ROOT} REQUIRED)
endif()
find_program(KILN_VERILATOR_EXE NAMES verilator HINTS ${VERILATOR_ROOT}/bin REQUIRED)
find_package(Threads REQUIRED)
set(KILN_VERILATE_ALL_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/KilnVerilateAll.cmake)

function(kiln_verilate target)
  cmake_parse_arguments(KV "" "PREFIX;TOP" "SOURCES;ARGS" ${ARGN})
  set(dir ${CMAKE_CURRENT_BINARY_DIR}/${target}.verilated/${KV_PREFIX})
  set(all ${dir}_all.cpp)
  add_custom_command(
    OUTPUT ${all} ${dir}/${KV_PREFIX}.h
    COMMAND ${CMAKE_COMMAND} -E rm -rf ${dir}
    COMMAND ${KILN_VERILATOR_EXE} --cc -Wno-fatal -O3 --unroll-count 256 --top-module ${KV_TOP} --prefix ${KV_PREFIX}
            --Mdir ${dir} ${KV_ARGS} ${KV_SOURCES}
    COMMAND ${CMAKE_COMMAND} -DDIR=${dir} -DPREFIX=${KV_PREFIX} -DOUT=${all} -P ${KILN_VERILATE_ALL_SCRIPT}
    DEPENDS ${KV_SOURCES} ${KILN_VERILATE_ALL_SCRIPT}
    COMMENT "Verilating ${KV_TOP} as ${KV_PREFIX}"
    VERBATIM)
  set(rt ${VERILATOR_ROOT}/include/verilated.cpp ${VERILATOR_ROOT}/include/verilated_threads.cpp)
  set_source_files_properties(${all} ${rt} PROPERTIES COMPILE_OPTIONS "-w;-O1")
  target_sources(${target} PRIVATE ${all} ${rt})
  target_include_directories(${target} SYSTEM PUBLIC ${dir} ${VERILATOR_ROOT}/include ${VERILATOR_ROOT}/include/vltstd)
  target_compile_definitions(${target} PRIVATE VM_COVERAGE=0 VM_SC=0 VM_TRACE=0 VM_TRACE_VCD=0 VM_TRACE_FST=0)
  target_link_libraries(${target} PUBLIC Threads::Threads)
endfunction()
