from seqgate.cli import main

main()
