from deblur.cli.app import main

main()
