# Boots the test guest under QEMU TCG and passes iff it reports PASS and
# powers the machine off by itself.
#   cmake -DQEMU=... -DKERNEL=testguest.elf -DARGS="-M|q35|-smp|2" [-DEXPECT_BOOT=pvh]
#         [-DEXPECT_LINE=regex] -P run_qemu.cmake
string(REPLACE "|" ";" args "${ARGS}")
execute_process(
  COMMAND "${QEMU}" -accel tcg -cpu max -m 256 -display none -monitor none -serial stdio
          -no-reboot -kernel "${KERNEL}" ${args}
  INPUT_FILE /dev/null
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err
  RESULT_VARIABLE rc
  TIMEOUT 240)
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "qemu exited with '${rc}' (timeout or crash: the guest did not power off)")
endif()
if(NOT out MATCHES "testguest: result PASS \\([0-9]+ checks\\)")
  message(FATAL_ERROR "guest did not report PASS")
endif()
if(EXPECT_BOOT AND NOT out MATCHES "testguest: hello \\(boot=${EXPECT_BOOT}\\)")
  message(FATAL_ERROR "no 'hello (boot=${EXPECT_BOOT})' line")
endif()
if(EXPECT_LINE AND NOT out MATCHES "${EXPECT_LINE}")
  message(FATAL_ERROR "no line matching '${EXPECT_LINE}'")
endif()
