from socmap.cli import main

main()
