# The settings of a directory that also builds on its own (tools/, tests/linux/), as the whole
# project sets them in the top-level CMakeLists.txt. Included right after that directory's
# project() when it is the top-level source directory.
set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
if(NOT CMAKE_BUILD_TYPE)
  set(CMAKE_BUILD_TYPE RelWithDebInfo)
endif()
add_compile_options(-Wall -Wextra -Werror)
