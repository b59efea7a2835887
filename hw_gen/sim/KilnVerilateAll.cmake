# cmake -DDIR=<Mdir> -DPREFIX=<Vname> -DOUT=<file> -P KilnVerilateAll.cmake
# Writes OUT: one translation unit that includes every C++ file Verilator wrote into DIR.
file(GLOB _cpp RELATIVE ${DIR} ${DIR}/${PREFIX}*.cpp)
list(SORT _cpp)
set(_text "// Generated: every file Verilator wrote for ${PREFIX}.\n")
foreach(_f ${_cpp})
  string(APPEND _text "#include \"${DIR}/${_f}\"\n")
endforeach()
file(WRITE ${OUT} "${_text}")
